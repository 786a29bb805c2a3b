"""Small local copies of the four corpus presets, written in the layout of their hub repositories.

The layouts, as the hub holds them (the sources are cited in steward/data/presets.py):

- allenai/c4: `{en,realnewslike}/c4-{train,validation}.NNNNN-of-MMMMM.json.gz`, gzipped JSON lines with the
  string fields text, timestamp and url in that order; en has 1024 train and 8 validation shards,
  realnewslike 512 and 1. A document's paragraphs are separated by single newlines.
- Salesforce/wikitext: `wikitext-103-raw-v1/{train-0000K-of-00002,validation-00000-of-00001,
  test-00000-of-00001}.parquet`, one string column `text`: one line of the raw files per record, with
  its trailing newline, a blank record "" between paragraphs and headings as ' = Title = \\n'.
- bookcorpus/bookcorpus: `plain_text/train-0000K-of-00010.parquet`, one string column `text`, one
  lower-cased, tokenized sentence per record; train is the only split.

Parquet files carry the `huggingface` schema metadata that `datasets` writes.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

C4_SHARDS = {"en": {"train": 1024, "validation": 8}, "realnewslike": {"train": 512, "validation": 1}}
WIKITEXT_SHARDS = {"train": 2, "validation": 1, "test": 1}
BOOKCORPUS_SHARDS = 10

_WORDS = ["river", "stone", "lantern", "orchard", "copper", "meadow", "signal", "harbor", "quiet", "amber",
          "falcon", "ledger", "café", "naïve", "東京", "über"]


def _words(seed: int, n: int) -> str:
    return " ".join(_WORDS[(seed * 7 + 3 * i + i * i) % len(_WORDS)] for i in range(n))


def c4_name(split: str, k: int, total: int) -> str:
    return f"c4-{split}.{k:05d}-of-{total:05d}.json.gz"


def write_c4(root: Path, config: str, shards: dict[str, int | list[int]], per_shard: int = 4) -> dict[str, list[str]]:
    """Shards of `config` under `root/config`: {split: how many (the first ones) or which indices}, each out
    of the real number of shards of that split. Returns {split: the texts written, in file order}."""
    out: dict[str, list[str]] = {}
    for split, which in shards.items():
        total = C4_SHARDS[config][split]
        out[split] = []
        for k in range(which) if isinstance(which, int) else which:
            docs = [f"{config} {split} shard {k} record {i}: {_words(100 * k + i, 5 + i)}.\n"
                    f"A second paragraph, {_words(i, 3)}." for i in range(per_shard)]
            out[split] += docs
            path = root / config / c4_name(split, k, total)
            path.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(path, "wt", encoding="utf-8") as f:
                for i, d in enumerate(docs):
                    record = {"text": d, "timestamp": f"2019-04-{18 + i % 8:02d}T0{i % 10}:12:57Z",
                              "url": f"https://news.example.org/{config}/{split}/{k}/{i}"}
                    f.write(json.dumps(record) + "\n")
    return out


def _hf_metadata() -> dict[bytes, bytes]:
    features = {"text": {"dtype": "string", "_type": "Value"}}
    return {b"huggingface": json.dumps({"info": {"features": features}}).encode()}


def write_text_parquet(path: Path, texts: list[str], column: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({column: pa.array(texts, type=pa.string())}).replace_schema_metadata(_hf_metadata())
    pq.write_table(table, path)
    return path


def wikitext_records(split: str, shard: int) -> list[str]:
    """Records of one shard as the raw files have them: blank records, headings and paragraph lines."""
    title = f"{split.title()} Article {shard}"
    return ["", f" = {title} = \n", "", f" {title} is a {_words(shard, 6)} . \n", "",
            " = = History = = \n", "", f" In 1901 the {_words(shard + 1, 4)} @-@ line opened . \n",
            f" It closed in 1950 , {_words(shard + 2, 3)} . \n", ""]


def write_wikitext(root: Path, shards: dict[str, int | list[int]] | None = None) -> dict[str, list[str]]:
    """`root/wikitext-103-raw-v1/` with {split: how many (the first ones) or which indices}, default all.
    Returns {split: the non-blank records written, in file order}."""
    shards = shards if shards is not None else dict(WIKITEXT_SHARDS)
    out: dict[str, list[str]] = {}
    for split, which in shards.items():
        out[split] = []
        for k in range(which) if isinstance(which, int) else which:
            records = wikitext_records(split, k)
            write_text_parquet(root / "wikitext-103-raw-v1" / f"{split}-{k:05d}-of-{WIKITEXT_SHARDS[split]:05d}.parquet",
                               records)
            out[split] += [r for r in records if r.strip()]
    return out


def write_bookcorpus(root: Path, which: int | list[int] = BOOKCORPUS_SHARDS, per_shard: int = 3) -> list[str]:
    """`root/plain_text/train-0000K-of-00010.parquet`; returns the sentences written, in file order."""
    out: list[str] = []
    for k in range(which) if isinstance(which, int) else which:
        sentences = [f"usually , he would be {_words(10 * k + i, 4)} ." for i in range(per_shard)]
        write_text_parquet(root / "plain_text" / f"train-{k:05d}-of-{BOOKCORPUS_SHARDS:05d}.parquet", sentences)
        out += sentences
    return out
