"""Choice fields: a section's `Literal[...]` annotations are the one list of what each key allows,
for its check and its error message as well as for `steward config`."""

from __future__ import annotations

import functools
import typing
from typing import Any

from steward.errors import ConfigError

# Keys whose error keeps the wording it had before the choices became Literals (users and tests
# know it); every other choice key says "must be one of ..., got ...".
_WORDING = {
    "model.flavor": "unknown flavor {value!r}; choose one of {choices}",
    "train.task": "must be {alternatives}, got {value!r}",
    "memory.policy": "must be {alternatives}, got {value!r}",
    "memory.profile": "must be {alternatives}, got {value!r}",
}


def alternatives(choices: typing.Sequence[str]) -> str:
    """'a, b or c'."""
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"


def literal_choices(tp: Any) -> tuple[str, ...] | None:
    """The choices of a `Literal[...]` type (nested Literals flattened), else None."""
    return typing.get_args(tp) if typing.get_origin(tp) is typing.Literal else None


@functools.cache
def choice_fields(section_cls: type) -> dict[str, tuple[str, ...]]:
    """{field name: choices} for every Literal field of a section class."""
    hints = typing.get_type_hints(section_cls)
    return {name: c for name, tp in hints.items() if (c := literal_choices(tp)) is not None}


def choice_error(key: str, value: Any, choices: typing.Sequence[str]) -> ConfigError:
    wording = _WORDING.get(key, "must be one of {choices}, got {value!r}")
    text = wording.format(choices=", ".join(choices), alternatives=alternatives(choices), value=value)
    return ConfigError(f"{key}: {text}")


def check_choices(section: object, skip: typing.Container[str] = ()) -> None:
    """Every Literal field of `section` holds one of its choices. The key's section is the class name
    in lower case (`Train` -> train.*), as JobConfig names its fields."""
    prefix = type(section).__name__.lower()
    for name, choices in choice_fields(type(section)).items():
        value = getattr(section, name)
        if name not in skip and value not in choices:
            raise choice_error(f"{prefix}.{name}", value, choices)
