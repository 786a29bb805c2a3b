"""Build a JobConfig from defaults < TOML file < `--section.key VALUE` flags (each section checks its
own values as it is built), and write it back as TOML. Checks across sections and subsystems are
`steward.train.checks.check_job`'s."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import hashlib
import inspect
import json
import sys
import typing
from pathlib import Path
from typing import Any

import tomli_w

from steward.config.choices import literal_choices
from steward.config.constraints import range_fields, shown
from steward.config.credentials import mask_config
from steward.config.job import JobConfig
from steward.errors import ConfigError
from steward.io import tomllib


def _sections() -> dict[str, type]:
    hints = typing.get_type_hints(JobConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(JobConfig)}


def _field_types(section_cls: type) -> dict[str, type]:
    hints = typing.get_type_hints(section_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(section_cls)}


def all_keys() -> list[str]:
    return [f"{s}.{k}" for s, cls in _sections().items() for k in _field_types(cls)]


def _type_name(tp: type) -> str:
    if literal_choices(tp) is not None:
        return "str"  # every choice is a string
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(key: str, tp: type, value: Any, from_cli: bool) -> Any:
    """Convert `value` to `tp`, or raise ConfigError naming `key`. A choice only has to be a string
    here: its section checks it against the Literal when it is built."""
    if literal_choices(tp) is not None:
        tp = str
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_cli and isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true or false, got {shown(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_cli and isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {shown(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_cli and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {shown(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {shown(value)}")
    raise ConfigError(f"{key}: unsupported config type {tp!r}")


def _unknown(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, all_keys(), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint} (`steward config` lists every key)")


def _apply(values: dict[str, dict[str, Any]], key: str, value: Any, from_cli: bool) -> None:
    """Record `value` for `key` in `values` (section -> field -> value), coerced to the field's type."""
    section, _, name = key.partition(".")
    sections = _sections()
    if section not in sections or not name:
        raise _unknown(key)
    types = _field_types(sections[section])
    if name not in types:
        raise _unknown(key)
    values[section][name] = _coerce(key, types[name], value, from_cli)


def parse_overrides(args: list[str]) -> list[tuple[str, str]]:
    """`--section.key VALUE` or `--section.key=VALUE` pairs, in order."""
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or "." not in arg.split("=", 1)[0]:
            raise ConfigError(f"unexpected argument {arg!r}; config flags look like --section.key VALUE")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        else:
            key = arg[2:]
            if i + 1 >= len(args):
                raise ConfigError(f"--{key}: missing value (write --{key} VALUE)")
            value = args[i + 1]
            i += 2
        pairs.append((key, value))
    return pairs


def _read_toml(p: Path) -> dict[str, Any]:
    """The tables of a TOML config file, or a one-line ConfigError (unreadable, not UTF-8, not TOML)."""
    try:
        text = p.read_bytes().decode("utf-8")
    except OSError as e:
        raise ConfigError(f"--config {p}: cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"--config {p}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
                          "a config is a TOML file saved as UTF-8") from None
    try:
        return tomllib.loads(text)
    except ValueError as e:  # TOMLDecodeError, or an integer of more digits than Python converts
        raise ConfigError(f"--config {p}: not valid TOML ({str(e).split(';')[0]})") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> JobConfig:
    """defaults < TOML file < CLI overrides; each section checks its values when it is built. What
    depends on other sections, files or the world is `steward.train.checks.check_job`'s to check."""
    values: dict[str, dict[str, Any]] = {section: {} for section in _sections()}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"--config: no such file {str(p)!r}")
        data = _read_toml(p)
        for section, table in data.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{p}: top-level key '{section}' must be a [section] table")
            for name, value in table.items():
                _apply(values, f"{section}.{name}", value, from_cli=False)
    for key, value in parse_overrides(overrides or []):
        _apply(values, key, value, from_cli=True)
    return JobConfig(**{section: cls(**values[section]) for section, cls in _sections().items()})


def to_dict(cfg: JobConfig) -> dict[str, dict[str, Any]]:
    return dataclasses.asdict(cfg)


def public_dict(cfg: JobConfig) -> dict[str, dict[str, Any]]:
    """The config as it is written (config.toml), hashed, recorded and shown: credentials in URL
    values (governance.store, governance.mlflow_uri) masked; see steward.config.credentials."""
    return mask_config(to_dict(cfg))


def to_toml(cfg: JobConfig) -> str:
    return tomli_w.dumps(public_dict(cfg))


def config_hash(cfg: JobConfig) -> str:
    """SHA-256 of the resolved config (as written, credentials masked) in canonical JSON form."""
    return hashlib.sha256(json.dumps(public_dict(cfg), sort_keys=True).encode()).hexdigest()


@functools.cache
def field_docs() -> dict[str, str]:
    """The docstring under every field, read from the source of the section classes."""
    docs: dict[str, str] = {}
    sections = {cls.__name__: name for name, cls in _sections().items()}
    modules = sorted({cls.__module__ for cls in _sections().values()})
    nodes = [node for module in modules for node in ast.parse(inspect.getsource(sys.modules[module])).body]
    for node in nodes:
        if not isinstance(node, ast.ClassDef) or node.name not in sections:
            continue
        body = node.body
        for i, stmt in enumerate(body):
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and i + 1 < len(body):
                nxt = body[i + 1]
                if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                    doc = " ".join(str(nxt.value.value).split())
                    docs[f"{sections[node.name]}.{stmt.target.id}"] = doc
    return docs


def describe() -> list[dict[str, Any]]:
    """Every key with its type, default and doc, its choices if it has a fixed set and its range if it
    is a number (for `steward config`)."""
    default = to_dict(JobConfig())
    docs = field_docs()
    rows = []
    for section, cls in _sections().items():
        for name, tp in _field_types(cls).items():
            key = f"{section}.{name}"
            row = {"key": key, "type": _type_name(tp), "default": default[section][name],
                   "doc": docs.get(key, "")}
            choices = literal_choices(tp)
            if choices is not None:
                row["choices"] = list(choices)
            if name in range_fields(cls):
                row["range"] = range_fields(cls)[name].interval
            rows.append(row)
    return rows
