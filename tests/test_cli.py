"""The `steward` command's consistency: every command and subcommand has a description, errors name
the whole subcommand on one line, and flags that mean a config key take its spelling (the older
spellings still parse to the same values)."""

from __future__ import annotations

import argparse

import pytest

from steward.cli.main import build_parser, main


def _commands(parser: argparse.ArgumentParser):
    """(parser, help in the parent's list) of every command and subcommand, at every depth."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
            for name, sub in action.choices.items():
                yield sub, helps.get(name)
                yield from _commands(sub)


def test_every_command_and_subcommand_has_help_and_a_description(capsys):
    commands = list(_commands(build_parser()))
    progs = {p.prog for p, _ in commands}
    assert {"steward train", "steward plan", "steward audit verify", "steward risk add", "steward roles grant",
            "steward fairness eval", "steward tokenizer train"} <= progs
    for p, help_ in commands:
        assert help_ and help_.strip(), f"{p.prog}: no help line in its parent's --help"
        assert p.description and p.description.strip(), f"{p.prog}: no description in its --help"
    with pytest.raises(SystemExit):
        main(["audit", "verify", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: steward audit verify") and "Recompute every leaf, root and signature" in out


def test_a_steward_error_names_the_whole_subcommand_on_one_line(tmp_path, capsys):
    assert main(["audit", "verify", str(tmp_path / "nothing-here")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("steward audit verify: error: ") and "neither a run directory" in err
    assert err.count("\n") == 1
    assert main(["fairness", "eval", str(tmp_path), "--size", "1"]) == 2
    assert capsys.readouterr().err == "steward fairness eval: error: --size must be >= 2 and --bootstrap >= 0\n"
    assert main(["train", "--nproc-per-node", "-1"]) == 2
    assert capsys.readouterr().err == "steward train: error: --nproc-per-node must be >= 1\n"


def test_argparse_errors_name_the_whole_subcommand(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["audit", "prove", str(tmp_path), "not-a-number"])
    assert e.value.code == 2
    assert "steward audit prove: error: argument N: invalid int value" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # unknown flags of a command that takes no config flags
        main(["plan", "--train.micro_batch_size", "2"])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "steward plan: error: unrecognized arguments: --train.micro_batch_size 2")


def _parsed(argv: list[str]) -> dict:
    args = vars(build_parser().parse_args(argv))
    args.pop("cli_parser")
    return args


@pytest.mark.parametrize("command", ["plan", "simulate"])
def test_old_flag_spellings_parse_like_the_config_keys(command):
    new = _parsed([command, "--model.flavor", "7b", "--parallel.cluster", "h100-80gb-ib", "--train.batch_size", "64",
                   "--train.seq_len", "1024", "--memory.budget_gb", "40", "--train.mixed_precision", "bf16"])
    old = _parsed([command, "--model", "7b", "--cluster", "h100-80gb-ib", "--batch", "64", "--seq-len", "1024",
                   "--memory-limit-gb", "40", "--dtype", "bf16"])
    assert new == old
    assert (new["model"], new["cluster"], new["batch"], new["seq_len"], new["memory_limit_gb"], new["dtype"]) == (
        "7b", "h100-80gb-ib", 64, 1024, 40.0, "bf16")
    assert _parsed([command, "--dtype", ""])["dtype"] == _parsed([command])["dtype"] == "auto"
    assert _parsed([command, "--seq-len", "8", "--train.seq_len", "16"])["seq_len"] == 16  # the last one wins


def test_plan_nproc_alias_and_hidden_old_spellings(capsys):
    assert _parsed(["plan", "--nproc", "3"])["nproc_per_node"] == _parsed(["plan", "--nproc-per-node", "3"])[
        "nproc_per_node"] == 3
    assert _parsed(["plan"])["nproc_per_node"] == 2
    with pytest.raises(SystemExit):
        main(["plan", "--help"])
    out = capsys.readouterr().out
    for flag in ("--train.batch_size", "--train.seq_len", "--memory.budget_gb", "--train.mixed_precision",
                 "--nproc-per-node"):
        assert flag in out
    for old in ("--batch ", "--seq-len", "--memory-limit-gb", "--dtype", "--nproc "):
        assert old not in out


def test_plan_with_the_new_spellings_prints_the_same_plan_as_the_old(capsys):
    flags = ["--cluster", "a100-80gb-ib", "--nodes", "1", "--top", "1", "--json"]
    assert main(["plan", "--model", "debug", "--batch", "16", "--seq-len", "64", "--memory-limit-gb", "20",
                 "--dtype", "fp32", *flags]) == 0
    old = capsys.readouterr().out
    assert main(["plan", "--model.flavor", "debug", "--train.batch_size", "16", "--train.seq_len", "64",
                 "--memory.budget_gb", "20", "--train.mixed_precision", "fp32", *flags]) == 0
    assert capsys.readouterr().out == old
