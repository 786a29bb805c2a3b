"""What a training run leaves for an auditor, found by inspecting the files in its output folder.

The same inspection for every system: each JSON, JSON-lines, TOML, SQLite and torch file under the
folder is opened and its keys (dictionary keys at any depth; a database's table names) are indexed;
each item below is found when the keys that carry it are there. A table, not a score: an item is
"found" with the file(s) it was found in, or not found with what was there instead (e.g. a library
version but no code version).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from steward.io import tomllib

TORCH_FILE_LIMIT = 64 * 2**20
"""Torch files larger than this are not opened (their keys are not indexed)."""

AUDIT_ITEMS = ("config+hash", "data fingerprint", "code version", "tamper-evident log", "signed provenance",
               "policy decisions", "model card")


def _keys(obj: Any, out: dict[str, Any], depth: int = 0) -> None:
    """Every dictionary key in `obj` (to depth 6), with the first value seen under it."""
    if depth > 6:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.setdefault(str(k), v)
            _keys(v, out, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj[:50]:
            _keys(v, out, depth + 1)


def _read(path: Path) -> Any:
    name = path.name.lower()
    if name.endswith(".json"):
        return json.loads(path.read_text())
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in path.read_text().splitlines()[:5] if line.strip()]
    if name.endswith(".toml"):
        return {"__toml_config__": tomllib.loads(path.read_text())}
    if name.endswith(".db"):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return {f"table:{t}": True for (t,) in db.execute("select name from sqlite_master where type='table'")}
    if name.endswith((".pt", ".pth")) and path.stat().st_size <= TORCH_FILE_LIMIT:
        import contextlib
        import sys

        import torch

        # unpickling a peer's checkpoint imports the peer, which may log to stdout (--json prints there)
        with contextlib.redirect_stdout(sys.stderr):
            return torch.load(path, map_location="cpu", weights_only=False)
    return None


def index_run(run_dir: Path) -> dict[str, dict[str, Any]]:
    """{file relative to run_dir: {key: first value}} for every file whose keys could be read."""
    index: dict[str, dict[str, Any]] = {}
    if not run_dir.is_dir():
        return index
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        try:
            content = _read(path)
        except Exception:  # a file of another format under a known suffix: nothing indexed
            continue
        keys: dict[str, Any] = {}
        _keys(content, keys)
        index[str(path.relative_to(run_dir))] = keys
    return index


Found = tuple[bool, str]


def _where(index: dict[str, dict[str, Any]], key: str, ok: Callable[[Any], bool] = bool) -> list[str]:
    return [f for f, keys in index.items() if key in keys and ok(keys[key])]


def _config_hash(index) -> Found:
    configs = _where(index, "__toml_config__") + _where(index, "ds_config") + _where(index, "config")
    hashes = _where(index, "config_hash") + _where(index, "config_sha256")
    if configs and hashes:
        return True, f"config in {', '.join(configs[:2])}; hash in {', '.join(hashes[:2])}"
    return False, f"config in {', '.join(configs[:2])}, no hash of it" if configs else "no config"


def _code_version(index) -> Found:
    commits = _where(index, "git_commit") + _where(index, "package_sha256")
    if commits:
        return True, f"git commit / package digest in {', '.join(commits[:2])}"
    libs = [k for keys in index.values() for k in keys if k.endswith("_version") or k == "version"]
    return False, f"library version only ({', '.join(sorted(set(libs))[:3])})" if libs else "none"


def _tamper_evident(index) -> Found:
    logs = _where(index, "table:steward_heads")
    verified = [f for f in _where(index, "audit", lambda v: isinstance(v, dict)) if index[f]["audit"].get("ok")]
    if logs and verified:
        return True, f"hash-tree log {logs[0]}, verified in {verified[0]}"
    return (False, f"log {logs[0]} without a recorded verification") if logs else (False, "none")


def _provenance(index) -> Found:
    signed = _where(index, "signatures", lambda v: isinstance(v, list) and len(v) > 0)
    return (True, f"DSSE envelope {signed[0]}") if signed else (False, "none")


def _decisions(index) -> Found:
    found = _where(index, "decisions", lambda v: isinstance(v, list) and len(v) > 0)
    if found:
        return True, f"{len(index[found[0]]['decisions'])} decisions in {found[0]}"
    return False, "none"


def _simple(key: str) -> Callable[[dict], Found]:
    def check(index) -> Found:
        found = _where(index, key)
        return (True, ", ".join(found[:2])) if found else (False, "none")

    return check


CHECKS: dict[str, Callable[[dict], Found]] = {
    "config+hash": _config_hash,
    "data fingerprint": _simple("fingerprint"),
    "code version": _code_version,
    "tamper-evident log": _tamper_evident,
    "signed provenance": _provenance,
    "policy decisions": _decisions,
    "model card": _simple("model_card"),
}


def inspect_run(run_dir: Path) -> dict[str, Any]:
    """{item: {"found": bool, "evidence": str}} for each of AUDIT_ITEMS, and the files inspected."""
    index = index_run(run_dir)
    out: dict[str, Any] = {}
    for item in AUDIT_ITEMS:
        found, evidence = CHECKS[item](index)
        out[item] = {"found": found, "evidence": evidence}
    out["files"] = sorted(index)
    return out
