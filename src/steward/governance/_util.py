"""Small helpers shared by the governance modules: errors, canonical JSON, time."""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any

from steward.errors import StewardError


class GovernanceError(StewardError):
    """Governance cannot do what was asked (bad policy, key, store, datasheet, run directory).
    The message is one line that names the file or field and the fix."""


def jsonable(obj: Any) -> Any:
    """`obj` as plain JSON data: paths and unknown objects become strings, tuples and sets lists,
    and non-finite floats the strings 'NaN', 'Infinity', '-Infinity' (canonical JSON has no NaN)."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(jsonable(v) for v in obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        try:
            return jsonable(obj.item())
        except (TypeError, ValueError):
            pass
    return str(obj)


def finite_or_none(v: Any) -> float | None:
    """A finite number as a float; anything else (None, a bool, a string, NaN, infinity) as None."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def canonical_json(obj: Any) -> bytes:
    """One byte string per value: sorted keys, no whitespace, UTF-8 (what gets hashed and signed)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def one_line(e: BaseException | str, limit: int = 300) -> str:
    text = str(e).strip().splitlines()
    first = text[0] if text else type(e).__name__
    return first if len(first) <= limit else first[: limit - 3] + "..."


def read_toml_file(path: str, key: str, what: str = "") -> dict[str, Any]:
    """A TOML file a config key names, parsed; GovernanceError naming `key` when it is missing or invalid."""
    from steward.io import tomllib

    p = Path(path).expanduser()
    if not p.is_file():
        raise GovernanceError(f"{key}: no such file {path!r}{what}")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise GovernanceError(f"{key}: {p} is not valid TOML ({e})") from None


def check_name(name: str, what: str) -> str:
    """A person's name as the registry, the log and every listing show it: non-empty, at most 128
    characters, no control characters (a newline in a name could fake lines of `audit log` or `roles
    list`), no surrounding spaces. Returns the name; raises a one-line GovernanceError naming `what`."""
    if not name or name != name.strip():
        raise GovernanceError(f"{what}: {name!r} must be a non-empty name without surrounding spaces")
    if len(name) > 128:
        raise GovernanceError(f"{what}: a name of {len(name)} characters; give at most 128")
    bad = [c for c in name if not c.isprintable()]
    if bad:
        raise GovernanceError(f"{what}: {name!r} holds the control character {bad[0]!r}; give a name of "
                              "printable characters")
    return name
