"""The `steward` command: parses arguments and dispatches to the packages. Thin on purpose.

Each command lives in a module of this package with a `register(subparsers)` function that adds
its parser and sets `func` (called with the parsed namespace; returns the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import steward
from steward.errors import StewardError, UserError  # noqa: F401  (UserError: importable from here too)

# Modules that register commands, in the order `--help` lists them.
COMMAND_MODULES = [
    "steward.cli.train_cmd",
    "steward.cli.config_cmd",
    "steward.cli.bench_cmd",
    "steward.cli.tokenizer_cmd",
    "steward.cli.governance_cmd",
    "steward.cli.keys_cmd",
    "steward.cli.memory_cmd",
    "steward.cli.explain_cmd",
    "steward.cli.parallel_cmd",
    "steward.cli.fairness_cmd",
    "steward.cli.eval_cmd",
    "steward.cli.drift_cmd",
]


class _Commands(argparse._SubParsersAction):
    """Subcommands: each one's --help shows a description (its one-line help, when it gives none),
    and each records its parser in the namespace (`cli_parser`), so that errors name the whole
    command (`steward audit verify: error: ...`)."""

    def add_parser(self, name, **kwargs):
        help_ = kwargs.get("help")
        if help_ and not kwargs.get("description"):
            kwargs["description"] = help_[0].upper() + help_[1:] + ("" if help_.endswith(".") else ".")
        parser = super().add_parser(name, **kwargs)
        parser.set_defaults(cli_parser=parser)
        return parser


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose subcommands (at every depth) are _Commands."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _Commands)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="steward",
        description="Train decoder language models efficiently, fairly, explainably and auditably.",
    )
    parser.add_argument("--version", action="version", version=f"steward {steward.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _joined_lines(e: BaseException) -> str:
    """The error's message on one line (the lines of a message that has several, joined)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return str(e) if len(lines) <= 1 else " ".join(lines)


def _undecodable(args: argparse.Namespace) -> str:
    """The name of the first argument made of bytes the locale could not decode ('' when none): Python
    keeps them as lone surrogates, which no file, log entry or signature can hold."""
    for name, value in vars(args).items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and not v.isascii():
                try:
                    v.encode("utf-8")
                except UnicodeEncodeError:
                    return name
    return ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    command = getattr(args, "cli_parser", parser)  # the innermost subcommand's parser
    if rest and not getattr(args, "accepts_overrides", False):
        command.error(f"unrecognized arguments: {' '.join(rest)}")
    args.overrides = rest
    bad = _undecodable(args)
    if bad:
        print(f"{command.prog}: error: {bad}: not valid UTF-8 text (bytes the locale could not decode); give it "
              "in UTF-8", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except StewardError as e:
        print(f"{command.prog}: error: {_joined_lines(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `steward ... | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(f"{command.prog}: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The `steward` command: main's exit code; a torchrun worker that fails with its process group still up
    leaves through `steward.jobs.leave`, so that torchrun reports that code, not a teardown's signal."""
    code = main()
    dist = sys.modules.get("torch.distributed")  # only where a command loaded it: no torch import here
    if code and dist is not None and dist.is_available() and dist.is_initialized():
        from steward.jobs import leave

        leave(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
