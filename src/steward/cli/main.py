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
    "steward.cli.memory_cmd",
    "steward.cli.explain_cmd",
    "steward.cli.parallel_cmd",
    "steward.cli.fairness_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steward",
        description="Train decoder language models efficiently, fairly, explainably and auditably.",
    )
    parser.add_argument("--version", action="version", version=f"steward {steward.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if rest and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.overrides = rest
    try:
        return int(args.func(args) or 0)
    except StewardError as e:
        print(f"steward {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `steward ... | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(f"steward {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
