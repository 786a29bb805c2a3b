"""The default corpus `stdlib-docs`: the documentation strings of the installed Python standard library.

Available on any machine with Python and built without importing a single module (some have side
effects): every .py file is parsed with `ast`, in sorted path order, and each module, class and
function docstring becomes one document; so does each topic of `pydoc_data/topics.py` (the
language reference pages that `help('assert')` shows). Skipped: tests (test/, tests/,
test_*.py), turtledemo, IDLE, site-packages, __main__.py scripts, files that do not parse (lib2to3's
deliberately broken samples), docstrings shorter than `MIN_CHARS`, and exact repeats.

The result depends only on the Python version and its stdlib files; `fingerprint` pins it.
Parsing takes a few seconds, so the corpus is kept in memory per process and cached on disk
under `$XDG_CACHE_HOME/steward` (default ~/.cache/steward), keyed by the Python version, the stdlib
path and `CORPUS_VERSION`; a cache file whose fingerprint does not match its documents is rebuilt.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
import os
import sys
import sysconfig
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from steward.io import atomic_write_text

CORPUS_VERSION = 1
"""Bump when the extraction rules change, so disk caches of older builds are not used."""

MIN_CHARS = 40
"""Docstrings shorter than this (after `inspect.cleandoc`) are not worth a document."""

# Folder names skipped anywhere below the stdlib root.
_SKIP_DIRS = frozenset(
    {"test", "tests", "idle_test", "idlelib", "site-packages", "dist-packages", "__pycache__",
     "turtledemo"}
)


@dataclass(frozen=True)
class Corpus:
    documents: tuple[str, ...]
    fingerprint: str
    """SHA-256 over the documents (each length-prefixed, UTF-8), hex."""
    root: str
    """The stdlib folder the documents were read from."""
    num_files: int
    """Python files parsed."""

    @property
    def num_bytes(self) -> int:
        return sum(len(d.encode()) for d in self.documents)


def stdlib_root() -> str:
    return sysconfig.get_paths()["stdlib"]


def documents_fingerprint(documents) -> str:
    """SHA-256 over documents, each prefixed by its UTF-8 length, so boundaries count."""
    h = hashlib.sha256()
    for doc in documents:
        data = doc.encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _python_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Prune in place; also skip config-3.x-<platform> folders and vendored packages.
        dirnames[:] = sorted(
            d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(("config-", ".")))
        for name in filenames:
            if name.endswith(".py") and not name.startswith("test_") and name != "__main__.py":
                files.append(Path(dirpath, name))
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _docstrings(tree: ast.Module):
    """Module, class and function docstrings in source order (depth first)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        doc = ast.get_docstring(node, clean=True)
        if doc:
            yield doc
        children = [n for n in node.body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
        # Also reach definitions nested in if/try blocks at module or class level.
        for stmt in node.body:
            if isinstance(stmt, (ast.If, ast.Try)):
                for block in (stmt.body, getattr(stmt, "orelse", []), getattr(stmt, "finalbody", [])):
                    children.extend(n for n in block if isinstance(n, (ast.ClassDef, ast.FunctionDef,
                                                                        ast.AsyncFunctionDef)))
        children.sort(key=lambda n: (n.lineno, n.col_offset))
        stack.extend(reversed(children))


def _topics(tree: ast.Module):
    """The string values of the `topics = {...}` dict literal in pydoc_data/topics.py."""
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Dict):
            for value in stmt.value.values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    yield value.value.strip()


def build_corpus(root: str) -> Corpus:
    """Parse the stdlib at `root` (no caching)."""
    docs: list[str] = []
    seen: set[str] = set()
    base = Path(root)
    files = _python_files(base)
    for path in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escape sequences in old files
                tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError, UnicodeDecodeError, OSError):
            continue  # deliberately broken sample files, unreadable files
        found = _docstrings(tree)
        if path.relative_to(base).as_posix() == "pydoc_data/topics.py":
            found = _topics(tree)
        for doc in found:
            if len(doc) >= MIN_CHARS and doc not in seen:
                seen.add(doc)
                docs.append(doc)
    return Corpus(tuple(docs), documents_fingerprint(docs), root, len(files))


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "steward"


def _cache_path(name: str, root: str, version: int) -> Path:
    key = hashlib.sha256(f"{version}|{sys.version}|{root}".encode()).hexdigest()[:20]
    return cache_dir() / f"{name}-{key}.json"


def _load_cached(path: Path, root: str) -> Corpus | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        docs = tuple(data["documents"])
        if data["root"] != root or documents_fingerprint(docs) != data["fingerprint"]:
            return None
        return Corpus(docs, data["fingerprint"], root, int(data["num_files"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save_cached(path: Path, corpus: Corpus) -> None:
    """Written atomically, so concurrent workers never read half a file."""
    data = {"root": corpus.root, "fingerprint": corpus.fingerprint, "num_files": corpus.num_files,
            "documents": list(corpus.documents)}
    with contextlib.suppress(OSError):  # a read-only home only costs the rebuild next time
        atomic_write_text(path, json.dumps(data))


def cached_corpus(name: str, root: str, version: int, build: Callable[[str], Corpus], use_disk: bool = True) -> Corpus:
    """`build(root)`, or its copy on disk under `cache_dir()` keyed by `name`, `version` (of the
    extraction rules), the Python version and `root`; a copy whose fingerprint does not match its
    documents is rebuilt."""
    path = _cache_path(name, root, version)
    corpus = _load_cached(path, root) if use_disk else None
    if corpus is None:
        corpus = build(root)
        if use_disk:
            _save_cached(path, corpus)
    return corpus


@functools.cache
def _cached(root: str, use_disk: bool) -> Corpus:
    return cached_corpus("stdlib-docs", root, CORPUS_VERSION, build_corpus, use_disk)


def stdlib_corpus(root: str | None = None, use_disk_cache: bool = True) -> Corpus:
    """The `stdlib-docs` corpus of this interpreter (or of the stdlib folder `root`).

    Kept in memory per process; see the module docstring for the disk cache."""
    return _cached(os.path.abspath(root or stdlib_root()), use_disk_cache)
