"""The corpus presets and their local copies: which files of a folder laid out like the hub repository
hold a split, checked before anything is read.

The layouts, as the hub repositories hold them:

- allenai/c4 (configs en, realnewslike, ...): `{config}/c4-{split}.NNNNN-of-MMMMM.json.gz`, gzipped JSON
  lines with the string fields text, timestamp and url; en has 1024 train and 8 validation shards,
  realnewslike 512 and 1 (`_N_SHARDS_PER_SPLIT` and `_DATA_URL` in the loading script,
  https://huggingface.co/datasets/legacy-datasets/c4/blob/main/c4.py).
- Salesforce/wikitext, config wikitext-103-raw-v1: `wikitext-103-raw-v1/train-0000K-of-00002.parquet`,
  `validation-00000-of-00001.parquet`, `test-00000-of-00001.parquet`, one string column `text`, one
  line of the raw files per record, blank records between paragraphs
  (https://huggingface.co/datasets/Salesforce/wikitext/tree/main/wikitext-103-raw-v1, "Convert dataset
  to Parquet (#8)").
- bookcorpus/bookcorpus, config plain_text: `plain_text/train-0000K-of-00010.parquet`, one string column
  `text`, one sentence per record, a train split only (commit d904700 "Convert dataset to Parquet",
  https://huggingface.co/datasets/bookcorpus/bookcorpus/commit/d904700c5e5d69e71bcadbe182d2c5201fbbb007).

A local copy may hold the first k shards of a split (C4's en is 305 GB; a partial download is the usual way
to use it, e.g. `git lfs pull --include` of some shards, which leaves the others as Git LFS pointers), but
not shards with a gap before the last one, nor shards of two different downloads. A gap, a split whose
files are all LFS pointers (a clone without git-lfs), or a file not in the preset's format is named
before anything is read.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

from steward.data.errors import DataError


@dataclass(frozen=True)
class Preset:
    hf_id: str
    config: str
    format: str
    """'json' (JSON lines, possibly gzipped) or 'parquet': how the files of `data_files` are read."""
    data_files: dict[str, str]
    """Split -> glob inside the repository; '{config}' is replaced by the config name."""
    license: str
    """License as the dataset card states it."""
    example: str
    """One file name in the repository layout, for error messages."""


PRESETS: dict[str, Preset] = {
    "c4": Preset(
        "allenai/c4", "en", "json",
        {"train": "{config}/c4-train.*.json.gz", "validation": "{config}/c4-validation.*.json.gz"},
        "odc-by", "en/c4-train.00000-of-01024.json.gz",
    ),
    "c4-realnewslike": Preset(
        "allenai/c4", "realnewslike", "json",
        {"train": "{config}/c4-train.*.json.gz", "validation": "{config}/c4-validation.*.json.gz"},
        "odc-by", "realnewslike/c4-train.00000-of-00512.json.gz",
    ),
    "wikitext-103": Preset(
        "Salesforce/wikitext", "wikitext-103-raw-v1", "parquet",
        {s: "{config}/" + s + "-*.parquet" for s in ("train", "validation", "test")},
        "cc-by-sa-3.0, gfdl", "wikitext-103-raw-v1/train-00000-of-00002.parquet",
    ),
    "bookcorpus": Preset(
        "bookcorpus/bookcorpus", "plain_text", "parquet",
        {"train": "{config}/train-*.parquet"},
        "unknown", "plain_text/train-00000-of-00010.parquet",
    ),
}

_LFS_POINTER = b"version https://git-lfs.github.com/spec/"
_MAGIC = {"json": (b"\x1f\x8b", "gzip-compressed"), "parquet": (b"PAR1", "a Parquet file")}
_SHARD = re.compile(r"(\d+)-of-(\d+)")


@dataclass(frozen=True)
class LocalSplit:
    files: list[str]
    """Absolute paths, in shard order."""
    shards: str
    """'k of N' when the file names number their shards, else ''."""


def local_split(preset: Preset, root_dir: str, config: str, split: str, name: str) -> LocalSplit:
    """The files of `split` under `root_dir`, a local copy of the preset's repository; raises DataError
    naming data.hf_data_dir or data.hf_split and the fix when the copy cannot be read as the hub's."""
    root = Path(root_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"data.hf_data_dir: {root_dir!r} is not a folder")
    if split not in preset.data_files:
        raise DataError(f"data.hf_split: {name} has no split {split!r}; choose one of {', '.join(preset.data_files)}")
    pattern = preset.data_files[split].format(config=config)
    files = sorted(glob.glob(os.path.join(glob.escape(str(root)), pattern)))
    if not files:
        raise DataError(_no_files(preset, root, config, pattern))
    pointers = {f for f in files if _is_lfs_pointer(f)}
    data = [f for f in files if f not in pointers]
    if not data or (pointers and not all(_SHARD.search(os.path.basename(f)) for f in files)):
        raise DataError(_pointer_error(preset, root, sorted(pointers)[0]))
    for f in data:
        _check_format(preset, root, f)
    return LocalSplit(data, _check_shards(preset, root, data, pointers, split))


def _no_files(preset: Preset, root: Path, config: str, pattern: str) -> str:
    inner = pattern.split("/", 1)[1]
    if glob.glob(os.path.join(glob.escape(str(root)), inner)):
        return (f"data.hf_data_dir: {str(root)!r} holds the {config} files itself; set data.hf_data_dir to its "
                f"parent {str(root.parent)!r}")
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir() if not p.name.startswith("."))
    held = f"it holds {', '.join(entries[:8])}{', ...' if len(entries) > 8 else ''}" if entries else "it is empty"
    return (f"data.hf_data_dir: no files match {pattern!r} under {str(root)!r} ({held}); lay it out like the hub "
            f"repository of {preset.hf_id} (e.g. {preset.example})")


def _is_lfs_pointer(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(len(_LFS_POINTER)) == _LFS_POINTER


def _pointer_error(preset: Preset, root: Path, path: str) -> str:
    return (f"data.hf_data_dir: {os.path.relpath(path, root)!r} is a Git LFS pointer, not the data; run `git lfs "
            f"pull` in {str(root)!r} (or download the files with `huggingface-cli download --repo-type dataset "
            f"{preset.hf_id}`)")


def _check_format(preset: Preset, root: Path, path: str) -> None:
    magic, what = _MAGIC[preset.format]
    with open(path, "rb") as f:
        if f.read(len(magic)) != magic:
            raise DataError(f"data.hf_data_dir: {os.path.relpath(path, root)!r} is not {what}, as "
                            f"{preset.hf_id}'s files are; download it again")


def _check_shards(preset: Preset, root: Path, files: list[str], pointers: set[str], split: str) -> str:
    """'k of N' for k present shards of N; the files left as LFS pointers after them count as not
    downloaded (`git lfs pull --include` of the first shards), a gap before the last one is an error."""
    numbered = [_SHARD.search(os.path.basename(f)) for f in files]
    if not all(numbered):
        return ""
    totals = sorted({int(m.group(2)) for m in numbered})
    if len(totals) > 1:
        raise DataError(
            f"data.hf_data_dir: the {split} shards under {str(root)!r} say {' and '.join(map(str, totals))} shards "
            "in all (two downloads mixed?); keep the files of one download"
        )
    have = {int(m.group(1)) for m in numbered}
    missing = min(set(range(max(have))) - have, default=None)
    if missing is not None:
        m, f = next((m, f) for m, f in zip(numbered, files, strict=True) if int(m.group(1)) > missing)
        name, width = os.path.basename(f), len(m.group(1))
        path = os.path.join(os.path.dirname(f), name[: m.start(1)] + f"{missing:0{width}d}" + name[m.end(1):])
        if path in pointers:
            raise DataError(_pointer_error(preset, root, path))
        raise DataError(
            f"data.hf_data_dir: {os.path.relpath(path, root)!r} is missing ({len(have)} of the {split} shards up to "
            f"{max(have):0{width}d} are there); download it, or keep only a leading run of shards"
        )
    return f"{len(have)} of {totals[0]}"
