"""Document sources: where the text comes from, one document at a time, in a fixed order.

`open_source(cfg.data)` picks the kind from `data.source`:

- `stdlib-docs`: the default corpus (see `steward.data.corpus`).
- `manpages`, `licenses`, `debian-packages`: man pages, license texts and package descriptions of
  this (Debian-based) machine (see `steward.data.system`).
- a `.txt`/`.md` file or a folder of them (recursively, sorted by path). `data.text_split` says
  what a document is: `paragraph` (default: blocks separated by blank lines, so a single file still
  gives enough documents to hold some out for validation) or `file`.
- a `.jsonl`/`.jsonl.gz` file or folder: one JSON object per line, text in `data.field`.
- a `.parquet` file or folder: text in the column `data.field`, read in batches with pyarrow.
- `hf:<id>`: `datasets.load_dataset(id, data.hf_config or None, split=data.hf_split,
  streaming=data.streaming)`; with `data.hf_data_dir`, `load_dataset(hf_data_dir, ...)` reads a
  local copy of the repository instead.
- presets `c4`, `c4-realnewslike`, `wikitext-103`, `bookcorpus`: fixed hub ids and configs (see
  `steward.data.presets`); with `data.hf_data_dir` the files of the split are read from a local folder
  laid out like the hub repository, checked first (`local_split`), through the same
  `load_dataset("json"|"parquet", data_files=...)` path.

Empty and whitespace-only texts are skipped everywhere (wikitext has a blank record between
paragraphs). Hugging Face sources are streams when `data.streaming` is true (the default), else
finite; local sources are always finite.

Fingerprints: every document a source yields updates a chained SHA-256 (`fingerprint()`,
`records_read`). For a finite source read once, that is a digest of its whole content; for a
stream, of exactly the records read so far and their count. `fingerprint_state()` /
`load_fingerprint_state()` carry it across a resume.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from steward.data.errors import DataError
from steward.data.presets import PRESETS, local_split
from steward.io import JsonlError, read_jsonl

__all__ = ["DataError", "PRESETS", "Source", "open_source", "read_documents"]

SYSTEM_SOURCES = ("manpages", "licenses", "debian-packages")
"""Corpora built from text the machine has (steward.data.system.SYSTEM_CORPORA; a test keeps the two equal)."""

TEXT_EXTS = (".txt", ".md")
JSONL_EXTS = (".jsonl", ".jsonl.gz")
PARQUET_EXTS = (".parquet",)
_KIND_OF_EXT = {**dict.fromkeys(TEXT_EXTS, "text"), **dict.fromkeys(JSONL_EXTS, "jsonl"),
                **dict.fromkeys(PARQUET_EXTS, "parquet")}
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")


def _ext(path: Path) -> str:
    name = path.name.lower()
    return ".jsonl.gz" if name.endswith(".jsonl.gz") else path.suffix.lower()


class RecordHasher:
    """Chained SHA-256 over records: state' = sha256(state || sha256(record)). Unlike a running
    hashlib object its state is a hex string, so it can be saved and resumed."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.state = bytes(32)
        self.count = 0

    def update(self, record: str) -> None:
        self.state = hashlib.sha256(self.state + hashlib.sha256(record.encode("utf-8")).digest()).digest()
        self.count += 1

    def hexdigest(self) -> str:
        return hashlib.sha256(self.state + self.count.to_bytes(8, "little")).hexdigest()


class Source:
    """A deterministic sequence of documents. Subclasses implement `_iter()`."""

    name: str
    """The `data.source` string."""
    kind: str
    """stdlib-docs, text, jsonl, parquet or hf."""
    finite: bool
    """True: read whole into memory (respecting data.max_docs). False: streamed."""

    def __init__(self) -> None:
        self._hasher = RecordHasher()

    def _iter(self) -> Iterator[str]:
        raise NotImplementedError

    def documents(self, start: int = 0) -> Iterator[str]:
        """Documents in order, from the `start`-th. Each one yielded is added to the fingerprint;
        `start=0` resets the fingerprint first, `start>0` continues it (restore it with
        `load_fingerprint_state` when resuming)."""
        if start == 0:
            self._hasher.reset()
        it = self._iter()
        if start:
            it = itertools.islice(it, start, None)
        for doc in it:
            self._hasher.update(doc)
            yield doc

    @property
    def records_read(self) -> int:
        return self._hasher.count

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the documents read so far and their count."""
        return self._hasher.hexdigest()

    def fingerprint_state(self) -> dict[str, Any]:
        return {"records_read": self._hasher.count, "hash_state": self._hasher.state.hex()}

    def load_fingerprint_state(self, state: dict[str, Any]) -> None:
        self._hasher.state = bytes.fromhex(state["hash_state"])
        self._hasher.count = int(state["records_read"])

    def describe(self) -> dict[str, Any]:
        """For the governance datasheet."""
        return {"source": self.name, "kind": self.kind, "finite": self.finite}


def read_documents(source: Source, max_docs: int = 0) -> list[str]:
    """All documents of a finite source (the first `max_docs` when > 0); an empty source is an error."""
    it = source.documents()
    docs = list(itertools.islice(it, max_docs) if max_docs > 0 else it)
    if not docs:
        raise DataError(f"data.source: {source.name!r} holds no documents (all files empty?); point it at some text")
    return docs


# ---- local sources ---------------------------------------------------------------------------


class StdlibSource(Source):
    kind = "stdlib-docs"
    finite = True

    def __init__(self) -> None:
        super().__init__()
        self.name = "stdlib-docs"

    def _iter(self) -> Iterator[str]:
        from steward.data.corpus import stdlib_corpus

        return iter(stdlib_corpus().documents)

    def describe(self) -> dict[str, Any]:
        from steward.data.corpus import stdlib_corpus

        corpus = stdlib_corpus()
        return {
            **super().describe(),
            "path": corpus.root,
            "python": sys.version.split()[0],
            "license": "PSF-2.0",
            "corpus_fingerprint": corpus.fingerprint,
        }


class SystemSource(Source):
    """manpages, licenses, debian-packages: text this machine has (see `steward.data.system`)."""

    kind = "system"
    finite = True

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def _iter(self) -> Iterator[str]:
        from steward.data.system import system_corpus

        return iter(system_corpus(self.name).documents)

    def describe(self) -> dict[str, Any]:
        from steward.data.system import SYSTEM_CORPORA, system_corpus

        corpus = system_corpus(self.name)
        return {**super().describe(), "path": corpus.root, "num_files": corpus.num_files,
                "num_bytes": corpus.num_bytes, "license": SYSTEM_CORPORA[self.name].license,
                "corpus_fingerprint": corpus.fingerprint}


class _FileSource(Source):
    finite = True

    def __init__(self, name: str, root: Path, files: list[Path]) -> None:
        super().__init__()
        self.name, self.root, self.files = name, root, files

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "path": str(self.root.resolve()),
            "num_files": len(self.files),
            "num_bytes": sum(f.stat().st_size for f in self.files),
            "license": "",
        }


class TextSource(_FileSource):
    kind = "text"

    def __init__(self, name: str, root: Path, files: list[Path], split: str) -> None:
        super().__init__(name, root, files)
        self.split = split

    def _iter(self) -> Iterator[str]:
        for f in self.files:
            try:
                text = f.read_text(encoding="utf-8").replace("\r\n", "\n")
            except UnicodeDecodeError as e:
                raise DataError(f"data.source: {str(f)!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None
            if self.split == "file":
                if text.strip():
                    yield text.strip("\n")
            else:
                for para in _PARAGRAPH_BREAK.split(text):
                    if para.strip():
                        yield para.strip("\n")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "text_split": self.split}


class JsonlSource(_FileSource):
    kind = "jsonl"

    def __init__(self, name: str, root: Path, files: list[Path], field: str) -> None:
        super().__init__(name, root, files)
        self.field = field

    def _iter(self) -> Iterator[str]:
        for f in self.files:
            try:
                for lineno, record in read_jsonl(f):
                    text = _field_text(record, self.field, f"line {lineno} of {f}")
                    if text:
                        yield text
            except JsonlError as e:
                raise DataError(f"data.source: {f}:{e.lineno} is not valid JSON ({e.msg})") from None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "field": self.field}


class ParquetSource(_FileSource):
    kind = "parquet"

    def __init__(self, name: str, root: Path, files: list[Path], field: str) -> None:
        super().__init__(name, root, files)
        self.field = field

    def _iter(self) -> Iterator[str]:
        import pyarrow.parquet as pq

        for f in self.files:
            try:
                pf = pq.ParquetFile(f)
            except Exception as e:  # pyarrow raises ArrowInvalid and OSError variants
                raise DataError(f"data.source: {str(f)!r} is not a readable Parquet file ({e})") from None
            columns = pf.schema_arrow.names
            if self.field not in columns:
                raise DataError(
                    f"data.field: {str(f)!r} has no column {self.field!r} (columns: {', '.join(columns)}); "
                    "set data.field to the text column"
                )
            for batch in pf.iter_batches(batch_size=1024, columns=[self.field]):
                for text in batch.column(0).to_pylist():
                    if text is not None and not isinstance(text, str):
                        raise DataError(
                            f"data.field: column {self.field!r} of {str(f)!r} holds {type(text).__name__}, "
                            "not text; set data.field to a string column"
                        )
                    if text and text.strip():
                        yield text

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "field": self.field}


def _field_text(record: Any, field: str, where: str) -> str:
    if not isinstance(record, dict):
        raise DataError(f"data.source: {where} is a JSON {type(record).__name__}, not an object")
    if field not in record:
        keys = ", ".join(map(str, record)) or "none"
        raise DataError(f"data.field: {where} has no field {field!r} (fields: {keys}); set data.field")
    text = record[field]
    if text is None:
        return ""
    if not isinstance(text, str):
        raise DataError(f"data.field: {field!r} in {where} is a {type(text).__name__}, not text; set data.field")
    return text if text.strip() else ""


def _local_source(data_cfg) -> Source:
    spec = data_cfg.source
    path = Path(spec).expanduser()
    if path.is_file():
        ext = _ext(path)
        if ext not in _KIND_OF_EXT:
            raise DataError(
                f"data.source: {spec!r} has an unknown extension {ext or '(none)'!r}; "
                f"use one of {', '.join(_KIND_OF_EXT)}, or a folder of such files"
            )
        kind, files = _KIND_OF_EXT[ext], [path]
    else:
        found: dict[str, list[Path]] = {}
        for f in sorted(path.rglob("*"), key=lambda p: p.relative_to(path).as_posix()):
            rel = f.relative_to(path).parts
            if f.is_file() and not any(part.startswith(".") for part in rel) and _ext(f) in _KIND_OF_EXT:
                found.setdefault(_KIND_OF_EXT[_ext(f)], []).append(f)
        if not found:
            raise DataError(
                f"data.source: folder {spec!r} holds no {', '.join(_KIND_OF_EXT)} files; point it at some data"
            )
        if len(found) > 1:
            raise DataError(
                f"data.source: folder {spec!r} mixes {' and '.join(sorted(found))} files; "
                "point data.source at a folder of one kind"
            )
        ((kind, files),) = found.items()
    if kind == "text":
        return TextSource(spec, path, files, data_cfg.text_split)
    if kind == "jsonl":
        return JsonlSource(spec, path, files, data_cfg.field)
    return ParquetSource(spec, path, files, data_cfg.field)


# ---- Hugging Face sources ----------------------------------------------------------------------


class HFSource(Source):
    """A Hugging Face dataset: a hub id, a preset, or a local copy of either (`data.hf_data_dir`)."""

    kind = "hf"

    def __init__(self, data_cfg, hf_id: str, preset: str = "") -> None:
        super().__init__()
        self.name = data_cfg.source
        self.hf_id = hf_id
        self.preset = preset
        p = PRESETS.get(preset)
        self.hf_config = data_cfg.hf_config or (p.config if p else "")
        self.hf_split = data_cfg.hf_split
        self.hf_data_dir = data_cfg.hf_data_dir
        self.streaming = bool(data_cfg.streaming)
        self.finite = not self.streaming
        self.field = data_cfg.field
        self.license = p.license if p else ""
        self.data_files: list[str] = []
        self.shards = ""
        if p and self.hf_data_dir:
            local = local_split(p, self.hf_data_dir, self.hf_config, self.hf_split, self.name)
            self.data_files, self.shards = local.files, local.shards

    def _load(self):
        import datasets

        p = PRESETS.get(self.preset)
        try:
            if self.data_files:
                return datasets.load_dataset(p.format, data_files=self.data_files, split="train",
                                             streaming=self.streaming)
            if self.hf_data_dir:
                return datasets.load_dataset(str(Path(self.hf_data_dir).expanduser()), self.hf_config or None,
                                             split=self.hf_split, streaming=self.streaming)
            return datasets.load_dataset(self.hf_id, self.hf_config or None, split=self.hf_split,
                                         streaming=self.streaming)
        except Exception as e:  # network, missing repo, bad config or split: one line for the user
            hint = "" if self.hf_data_dir else "; offline, set data.hf_data_dir to a local copy"
            raise self._error("load", e, hint) from None

    def _error(self, what: str, e: Exception, hint: str, where: str = "") -> DataError:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return DataError(
            f"data.source: cannot {what} {self.hf_id!r} (config {self.hf_config or 'default'!r}, "
            f"split {self.hf_split!r}){where}: {type(e).__name__}: {first[:300]}{hint}"
        )

    def _iter(self) -> Iterator[str]:
        ds = self._load()
        if self.license == "" and getattr(ds, "info", None) is not None:
            self.license = ds.info.license or ""
        where = f"{self.name} ({self.hf_split})"
        records = iter(ds)
        for i in itertools.count():
            try:
                record = next(records)
            except StopIteration:
                return
            except Exception as e:  # a truncated or corrupt file, a dropped connection: one line for the user
                fix = ("; download the files under data.hf_data_dir again" if self.hf_data_dir
                       else "; try again, or set data.hf_data_dir to a local copy")
                raise self._error("read", e, fix, f" after {i} records") from None
            text = _field_text(record, self.field, f"record {i} of {where}")
            if text:
                yield text

    def describe(self) -> dict[str, Any]:
        d = {
            **super().describe(),
            "hf_id": self.hf_id,
            "hf_config": self.hf_config,
            "hf_split": self.hf_split,
            "streaming": self.streaming,
            "field": self.field,
            "license": self.license,
        }
        if self.preset:
            d["preset"] = self.preset
        if self.hf_data_dir:
            d["path"] = str(Path(self.hf_data_dir).expanduser().resolve())
        if self.data_files:
            d["data_files"] = [os.path.relpath(f, d["path"]) for f in self.data_files]
        if self.shards:
            d["shards"] = self.shards
        return d


def open_source(data_cfg) -> Source:
    """The source `data.source` names; raises DataError (a ValueError) naming the key and the fix."""
    spec = data_cfg.source
    if spec == "stdlib-docs":
        return StdlibSource()
    if spec in SYSTEM_SOURCES:
        return SystemSource(spec)
    if spec in PRESETS:
        return HFSource(data_cfg, PRESETS[spec].hf_id, preset=spec)
    if spec.startswith("hf:"):
        hf_id = spec[3:].strip()
        if not hf_id:
            raise DataError("data.source: 'hf:' needs a dataset id, e.g. hf:allenai/c4")
        return HFSource(data_cfg, hf_id)
    if Path(spec).expanduser().exists():
        return _local_source(data_cfg)
    raise DataError(
        f"data.source: {spec!r} is not a file or folder, nor one of stdlib-docs, {', '.join(SYSTEM_SOURCES)}, "
        f"{', '.join(PRESETS)}, hf:<id>"
    )
