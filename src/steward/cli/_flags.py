"""Flags shared by several commands' parsers: the config-key spelling of a flag, with its old
spellings kept working (hidden from --help) so that existing scripts keep running."""

from __future__ import annotations

import argparse
from typing import Any

_SHARED = ("type", "choices", "action", "nargs", "metavar", "const")


def add_aliased(p: argparse.ArgumentParser, name: str, *aliases: str, **kwargs: Any) -> argparse.Action:
    """Add the flag `name` (documented) and `aliases` (older spellings, hidden) that parse to the
    same destination with the same type and choices; the last one given on the command line wins."""
    action = p.add_argument(name, **kwargs)
    shared = {k: v for k, v in kwargs.items() if k in _SHARED}
    for alias in aliases:
        p.add_argument(alias, dest=action.dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **shared)
    return action
