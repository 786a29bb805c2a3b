"""Resume edges: a crash before the first checkpoint, a finished run, a changed config (issue 20, item 6)."""

import json
from pathlib import Path

import pytest

from steward.cli.main import main
from steward.config import ConfigError, load_config
from steward.train.callbacks import Callback
from steward.train.governance_callback import GovernanceCallback
from steward.train.trainer import Trainer

TINY = [
    "--model.flavor", "debug", "--train.seq_len", "32", "--train.batch_size", "4", "--train.lr", "1e-2",
    "--train.warmup_steps", "1", "--train.val_every", "2", "--train.val_batches", "1", "--data.max_docs", "200",
    "--train.device", "cpu", "--train.threads", "1",
]


class Crash(Callback):
    """Raises at the end of step `at`, as a killed process would stop there."""

    def __init__(self, at: int):
        self.at = at

    def on_step_end(self, trainer, step, metrics):
        if step == self.at:
            raise RuntimeError(f"crash at step {step}")


def train(out: Path, *flags: str, governance: bool = False, crash_at: int = 0) -> dict:
    cfg = load_config(None, [*TINY, "--job.out", str(out), "--governance.enabled", str(governance).lower(), *flags])
    callbacks = [GovernanceCallback(cfg)] if governance else []
    if crash_at:
        callbacks.append(Crash(crash_at))
    return Trainer(cfg, callbacks=callbacks).run()


def metric_steps(out: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]


def audit_types(out: Path, capsys) -> list[str]:
    capsys.readouterr()
    assert main(["audit", "log", str(out), "--json"]) == 0
    return [e["type"] for e in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["entries"]]


def test_crash_before_the_first_checkpoint_restarts_metrics_from_step_zero(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="crash at step 3"):
        train(out, "--train.steps", "6", "--checkpoint.every", "5", crash_at=3)
    assert metric_steps(out) == [0, 1, 2]  # the crashed attempt's rows (step 3 stopped before its row)
    summary = train(out, "--train.steps", "6", "--checkpoint.every", "5", "--checkpoint.resume", "latest")
    assert summary["steps"] == 6
    assert metric_steps(out) == list(range(7))  # each step once, from the new attempt
    err = capsys.readouterr().err
    assert err.count("starting from step 0") == 1 and "metrics.jsonl" in err


def test_resuming_a_finished_run_says_so_and_records_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    first = train(out, "--train.steps", "4", governance=True)
    before = audit_types(out, capsys)
    metrics = (out / "metrics.jsonl").read_text()
    again = train(out, "--train.steps", "4", "--checkpoint.resume", "latest", governance=True)
    assert "is finished" in capsys.readouterr().err
    assert again == first  # the finished run's summary, unchanged
    assert (out / "metrics.jsonl").read_text() == metrics
    after = audit_types(out, capsys)
    assert after == before and after.count("run.finished") == 1
    assert main(["audit", "verify", str(out)]) == 0
    # the command line: one line on stderr, exit 0 (a requeued job that already finished is not a failure)
    capsys.readouterr()
    code = main(["train", *TINY, "--train.steps", "4", "--job.out", str(out), "--checkpoint.resume", "latest"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 0 and len(err) == 1 and "finished" in err[0] and "Traceback" not in err[0]
    assert audit_types(out, capsys).count("run.finished") == 1


def test_a_changed_config_on_resume_is_refused_naming_the_keys(tmp_path, capsys):
    out = tmp_path / "run"
    train(out, "--train.steps", "4", "--checkpoint.every", "2")
    config = (out / "config.toml").read_text()
    with pytest.raises(ConfigError) as e:
        train(out, "--train.steps", "6", "--train.lr", "2e-2", "--checkpoint.every", "2", "--checkpoint.resume",
              "latest")
    msg = str(e.value)
    assert "\n" not in msg and "train.steps" in msg and "train.lr" in msg and "checkpoint.allow_changes" in msg
    assert "checkpoint.every" not in msg
    assert (out / "config.toml").read_text() == config  # untouched
    assert metric_steps(out) == list(range(5))
    # the command line: one line, exit 2
    capsys.readouterr()
    code = main(["train", *TINY, "--train.steps", "6", "--job.out", str(out), "--checkpoint.every", "2",
                 "--checkpoint.resume", "latest"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "train.steps" in err[0]


def test_an_allowed_change_is_recorded_in_the_audit_log_and_config_toml(tmp_path, capsys):
    out = tmp_path / "run"
    train(out, "--train.steps", "4", governance=True)
    # one allowed key is not enough when two changed
    with pytest.raises(ConfigError, match="train.lr"):
        train(out, "--train.steps", "6", "--train.lr", "2e-2", "--checkpoint.resume", "latest",
              "--checkpoint.allow_changes", "train.steps", governance=True)
    summary = train(out, "--train.steps", "6", "--checkpoint.resume", "latest",
                    "--checkpoint.allow_changes", "train.steps, train.lr", governance=True)
    assert summary["steps"] == 6
    capsys.readouterr()
    assert main(["audit", "log", str(out), "--type", "run.config_changed", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["entries"]
    assert len(entries) == 1
    assert entries[0]["payload"]["changes"] == {"train.steps": {"old": 4, "new": 6}}
    assert entries[0]["payload"]["step"] == 4
    types = audit_types(out, capsys)
    assert types.index("run.config_changed") > len(types) - types[::-1].index("run.started") - 1
    assert main(["audit", "verify", str(out)]) == 0
    text = (out / "config.toml").read_text()
    assert "train.steps: 4 -> 6" in text and load_config(out / "config.toml").train.steps == 6


def test_allow_changes_names_known_keys(tmp_path):
    with pytest.raises(ConfigError, match="checkpoint.allow_changes: unknown config key 'train.stpes'; did you mean "
                                          "'train.steps'"):
        train(tmp_path / "run", "--train.steps", "2", "--checkpoint.allow_changes", "train.stpes")


def test_a_checkpoint_past_train_steps_is_refused(tmp_path):
    out = tmp_path / "run"
    train(out, "--train.steps", "4")
    with pytest.raises(ConfigError, match="train.steps: 2 is before step 4 of the checkpoint"):
        train(tmp_path / "fork", "--train.steps", "2", "--checkpoint.resume", str(out / "checkpoints" / "step-4"))
