"""What a section's annotations allow beyond the type, checked by `check_constraints` in each section's
`__post_init__`: every int and float field carries its range, `Annotated[int, Range(1, 10**9)]` (the one
place for its check, its error message and `steward config`'s listing), and every field that names a
file or folder carries `PathName`. A range is finite at both ends, so a value inside it is never nan or
inf, and the upper bounds keep the arithmetic done with the values (sample counters, seeds, sizes)
inside 64 bits. A path name must be one the operating system can take, so that no later check on it
fails with an OSError instead of naming the key."""

from __future__ import annotations

import functools
import math
import os
import typing
from dataclasses import dataclass

from steward.errors import ConfigError

# Keys whose error keeps the wording it had before their ranges were annotated (users and tests know it).
_WORDING = {
    "train.steps": "must be a positive integer of at most {high}, got {value}",
}


@dataclass(frozen=True)
class Range:
    low: int | float
    high: int | float
    low_open: bool = False
    """True: `low` itself is not allowed."""
    high_open: bool = False
    note: str = ""
    """What a special value means, shown after the range: ' (0: no clipping)'."""

    def contains(self, value: int | float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    @property
    def interval(self) -> str:
        """'[0, 1)'."""
        return f"{'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"

    def __str__(self) -> str:
        """Fractions as intervals ('in (0, 1]'), other ranges as bounds ('>= 1 and <= 1048576')."""
        if self.low >= 0 and self.high <= 1:
            return f"in {self.interval}"
        return f"{'>' if self.low_open else '>='} {self.low} and {'<' if self.high_open else '<='} {self.high}"


def shown(value: object) -> str:
    """A value for a one-line message: a number as written (an integer too long to print described by
    its length), anything else as its repr; cut to 60 characters."""
    if isinstance(value, int) and value.bit_length() > 128:
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"{'a negative' if value < 0 else 'an'} integer of about {digits} digits"
    text = str(value) if isinstance(value, (int, float)) else repr(value)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(text)} characters)"


@dataclass(frozen=True)
class PathName:
    """A file or folder name (or a word or URL the key also accepts): no NUL byte, no unknown ~user,
    at most 255 bytes per component and 4095 in all."""

    def problem(self, value: str) -> str:
        """Why no file can have the name `value` ('' when one can)."""
        if "://" in value:  # a URL, not a path
            return ""
        if "\x00" in value:
            return "holds a NUL byte"
        try:
            raw = os.fsencode(value)
        except UnicodeEncodeError:
            return "cannot be encoded as a file name"
        if len(raw) > 4095 or any(len(part) > 255 for part in raw.split(b"/")):
            return "is too long for a file name (255 bytes per component, 4095 in all)"
        if value.startswith("~") and os.path.expanduser(value) == value:
            return f"starts with {value.split('/')[0]!r}, a home directory that does not exist"
        return ""


@functools.cache
def _constraints(section_cls: type) -> dict[str, Range | PathName]:
    """{field name: Range or PathName} for every constrained field of a section class."""
    hints = typing.get_type_hints(section_cls, include_extras=True)
    return {name: meta for name, tp in hints.items() if typing.get_origin(tp) is typing.Annotated
            for meta in tp.__metadata__ if isinstance(meta, (Range, PathName))}


def range_fields(section_cls: type) -> dict[str, Range]:
    """{field name: Range} for every numeric field of a section class."""
    return {name: c for name, c in _constraints(section_cls).items() if isinstance(c, Range)}


def check_constraints(section: object) -> None:
    """Every numeric field of `section` lies in its Range and every PathName field can name a file. The
    key's section is the class name in lower case (`Train` -> train.*), as JobConfig names its fields."""
    prefix = type(section).__name__.lower()
    for name, c in _constraints(type(section)).items():
        value, key = getattr(section, name), f"{prefix}.{name}"
        if isinstance(c, PathName):
            problem = c.problem(value)
            if problem:
                raise ConfigError(f"{key}: {shown(value)} {problem}; give a file or folder name")
        elif not c.contains(value):
            wording = _WORDING.get(key, "must be {range}{note}, got {value}")
            text = wording.format(range=c, note=c.note, high=c.high, value=shown(value))
            raise ConfigError(f"{key}: {text}")
