"""Atomic file writes, the JSON-lines reader, content digests, the TOML reader and the flattening of
nested dicts into one level of keys (for flat key-value sinks): the one place for each."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

try:
    import tomllib  # noqa: F401  (re-exported: `from steward.io import tomllib`)
except ModuleNotFoundError:  # Python 3.10: the same API from the tomli package
    import tomli as tomllib  # noqa: F401


def atomic_write_bytes(path: str | Path, data: bytes, mode: int | None = None) -> None:
    """Write `data` to `path` so a crash leaves either the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True) + "\n")


def append_line(path: str | Path, line: str, durable: bool = True) -> None:
    """Append one line and flush it to the OS, and with `durable` to disk (for JSONL logs: a crash loses
    at most the line being written). Without `durable` the caller syncs later (`sync_file`)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line.rstrip("\n") + "\n")
        f.flush()
        if durable:
            os.fsync(f.fileno())


def sync_file(path: str | Path) -> None:
    """Flush what the OS holds of `path` to disk (after appends without `durable`); a missing file is fine."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class JsonlError(ValueError):
    """A line of a JSON-lines file that is not JSON; callers turn it into their own one-line error."""

    def __init__(self, path: str | Path, lineno: int, msg: str):
        super().__init__(f"{path}:{lineno}: not valid JSON ({msg})")
        self.path, self.lineno, self.msg = Path(path), lineno, msg


def read_jsonl(path: str | Path, *, skip_bad: bool = False, missing_ok: bool = False) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line of a JSON-lines file, read as a stream
    (gunzipped when the name ends in .gz); line numbers count every line, blank ones included.

    A line that is not JSON raises JsonlError, or is skipped with `skip_bad` (a log whose last line
    a crash cut short). A missing file raises FileNotFoundError, or yields nothing with `missing_ok`.
    The values are whatever the lines hold: a caller that needs objects checks for them.
    """
    path = Path(path)
    if missing_ok and not path.is_file():
        return
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                if skip_bad:
                    continue
                raise JsonlError(path, lineno, e.msg) from None
            yield lineno, value


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_Leaf = TypeVar("_Leaf")


def flatten_dict(d: Mapping[str, Any], *, sep: str, leaf: Callable[[Any], _Leaf], prefix: str = "") -> dict[str, _Leaf]:
    """Nested dicts as one level: {"a": {"b": 1}} -> {f"a{sep}b": leaf(1)}; every non-dict value goes
    through `leaf` (float for figures, a truncated str for tracking-server params)."""
    out: dict[str, _Leaf] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_dict(v, sep=sep, leaf=leaf, prefix=key + sep))
        else:
            out[key] = leaf(v)
    return out
