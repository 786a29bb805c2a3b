"""Lineage facts of a run (ISO/IEC 27001 A.8.9, A.8.32): config and its hash, code version, base
model digest, checkpoint manifest digests."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from steward.io import sha256_file


def config_sha256(config: dict[str, Any]) -> str:
    """The config hash as steward.config computes it: SHA-256 of JSON with sorted keys."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _git(repo: Path, *args: str) -> bytes | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def find_checkout(start: Path) -> Path | None:
    for p in [start, *start.parents]:
        if (p / ".git").exists():
            return p
    return None


def code_version(package_file: str | None = None) -> dict[str, Any]:
    """Package version, and when Steward runs from a git checkout: the commit, whether there are
    uncommitted changes, and a SHA-256 over them (the diff against HEAD plus untracked files)."""
    import steward

    pkg_dir = Path(package_file or steward.__file__).resolve().parent
    info: dict[str, Any] = {"package": "steward", "version": steward.__version__,
                            "package_sha256": package_digest(pkg_dir)}
    repo = find_checkout(pkg_dir)
    if repo is None:
        info["git_commit"] = None
        return info
    head = _git(repo, "rev-parse", "HEAD")
    info["git_commit"] = head.decode().strip() if head else None
    remote = _git(repo, "config", "--get", "remote.origin.url")
    if remote:
        info["git_remote"] = remote.decode().strip()
    diff = _git(repo, "diff", "HEAD", "--binary") if head else _git(repo, "diff", "--binary")
    untracked = _git(repo, "ls-files", "--others", "--exclude-standard", "-z")
    h = hashlib.sha256(diff or b"")
    names = sorted(n for n in (untracked or b"").decode(errors="replace").split("\0") if n)
    for name in names:
        f = repo / name
        if f.is_file():
            h.update(b"\0untracked\0" + name.encode() + b"\0" + bytes.fromhex(sha256_file(f)))
    info["dirty"] = bool(diff) or bool(names)
    info["uncommitted_sha256"] = h.hexdigest() if info["dirty"] else None
    info["untracked_files"] = len(names)
    return info


def package_digest(pkg_dir: Path) -> str:
    """SHA-256 over the package's source and data files (identifies the code without git)."""
    h = hashlib.sha256()
    for p in sorted(pkg_dir.rglob("*")):
        if p.is_file() and p.suffix in (".py", ".toml", ".json") and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(pkg_dir)).encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def dir_digest(root: str | Path) -> dict[str, Any]:
    """SHA-256 of a folder: over the sorted list of (relative path, file SHA-256). For a base model."""
    root = Path(root)
    files = {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}
    h = hashlib.sha256()
    for rel, digest in files.items():
        h.update(rel.encode() + b"\0" + digest.encode() + b"\n")
    return {"path": str(root.resolve()), "sha256": h.hexdigest(), "num_files": len(files)}


def manifest_digest(checkpoint_dir: str | Path, manifest: dict[str, Any] | None = None) -> str:
    """SHA-256 of the checkpoint's manifest.json as written (of its canonical JSON when absent)."""
    path = Path(checkpoint_dir) / "manifest.json"
    if path.is_file():
        return sha256_file(path)
    return hashlib.sha256(json.dumps(manifest or {}, sort_keys=True).encode()).hexdigest()


def dataset_documents(d: dict[str, Any]) -> int | None:
    v = d.get("num_documents", d.get("documents"))
    return int(v) if isinstance(v, (int, float)) else None


def dataset_tokens(d: dict[str, Any]) -> int | None:
    v = d.get("num_tokens", d.get("tokens"))
    return int(v) if isinstance(v, (int, float)) else None


def dataset_name(d: dict[str, Any]) -> str:
    return str(d.get("name") or d.get("source") or d.get("hf_id") or "dataset")
