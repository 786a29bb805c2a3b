"""The corpus presets (c4, c4-realnewslike, wikitext-103, bookcorpus) on local copies in their hub layout.

Each preset is read and trained on through the flags a user gives (`--data.source PRESET --data.hf_data_dir
DIR`), from files written exactly as the hub repository holds them (tests/_hub_layout.py), next to the
repository's other configs, which must not be read.
"""

from __future__ import annotations

import gzip
import itertools
import math
from pathlib import Path

import pytest

from _hub_layout import (
    c4_name,
    wikitext_records,
    write_bookcorpus,
    write_c4,
    write_text_parquet,
    write_wikitext,
)
from steward.cli.main import main
from steward.config import load_config
from steward.data import DataError, open_source
from steward.data.corpus import documents_fingerprint
from steward.data.sources import RecordHasher
from steward.train.trainer import Trainer

ALL = ["c4", "c4-realnewslike", "wikitext-103", "bookcorpus"]


def lay_out(preset: str, root: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """A local copy of `preset`'s repository under `root`, with other configs beside it. Returns the
    texts of each split of the preset and the files of each split (relative to root, in order)."""
    if preset in ("c4", "c4-realnewslike"):
        config, other = ("en", "realnewslike") if preset == "c4" else ("realnewslike", "en")
        expected = write_c4(root, config, {"train": 2, "validation": 1})
        write_c4(root, other, {"train": 1, "validation": 1})  # a clone of allenai/c4 holds every config
        totals = {"en": (1024, 8), "realnewslike": (512, 1)}[config]
        files = {"train": [f"{config}/{c4_name('train', k, totals[0])}" for k in (0, 1)],
                 "validation": [f"{config}/{c4_name('validation', 0, totals[1])}"]}
        return expected, files
    if preset == "wikitext-103":
        expected = write_wikitext(root)
        write_text_parquet(root / "wikitext-2-raw-v1" / "train-00000-of-00001.parquet", ["", " = Other = \n"])
        files = {"train": [f"wikitext-103-raw-v1/train-0000{k}-of-00002.parquet" for k in (0, 1)],
                 "validation": ["wikitext-103-raw-v1/validation-00000-of-00001.parquet"],
                 "test": ["wikitext-103-raw-v1/test-00000-of-00001.parquet"]}
        return expected, files
    expected = {"train": write_bookcorpus(root)}
    return expected, {"train": [f"plain_text/train-{k:05d}-of-00010.parquet" for k in range(10)]}


def data_cfg(preset: str, root: Path, *flags: str):
    return load_config(None, ["--data.source", preset, "--data.hf_data_dir", str(root), *flags]).data


@pytest.mark.parametrize("preset", ALL)
def test_each_split_of_a_preset_reads_exactly_its_files_in_order(tmp_path, preset):
    expected, files = lay_out(preset, tmp_path)
    for split in expected:
        for streaming in ("true", "false"):
            src = open_source(data_cfg(preset, tmp_path, "--data.hf_split", split, "--data.streaming", streaming))
            assert (src.kind, src.finite) == ("hf", streaming == "false")
            assert list(src.documents()) == expected[split], (split, streaming)
            d = src.describe()
            assert d["data_files"] == files[split]
            assert (d["preset"], d["hf_split"], d["path"]) == (preset, split, str(tmp_path.resolve()))
    d = open_source(data_cfg(preset, tmp_path)).describe()
    hub = {"c4": ("allenai/c4", "en", "odc-by"), "c4-realnewslike": ("allenai/c4", "realnewslike", "odc-by"),
           "wikitext-103": ("Salesforce/wikitext", "wikitext-103-raw-v1", "cc-by-sa-3.0, gfdl"),
           "bookcorpus": ("bookcorpus/bookcorpus", "plain_text", "unknown")}[preset]
    assert (d["hf_id"], d["hf_config"], d["license"]) == hub


def test_wikitext_blank_records_are_skipped_and_lines_kept_as_written(tmp_path):
    write_wikitext(tmp_path, {"train": 2})
    written = wikitext_records("train", 0) + wikitext_records("train", 1)
    docs = list(open_source(data_cfg("wikitext-103", tmp_path)).documents())
    assert written.count("") == 10 and docs == [r for r in written if r != ""]
    assert docs[:3] == [" = Train Article 0 = \n", docs[1], " = = History = = \n"] and docs[1].endswith(" . \n")


def test_a_leading_run_of_shards_is_a_subset_and_the_datasheet_says_how_many(tmp_path):
    expected = write_c4(tmp_path, "en", {"train": 3})
    d = open_source(data_cfg("c4", tmp_path)).describe()
    assert d["shards"] == "3 of 1024" and len(d["data_files"]) == 3
    assert list(open_source(data_cfg("c4", tmp_path)).documents()) == expected["train"]
    write_wikitext(tmp_path / "wt")
    assert open_source(data_cfg("wikitext-103", tmp_path / "wt")).describe()["shards"] == "2 of 2"


def read_order(texts: list[str], val_docs: int, n: int) -> list[str]:
    """The first n documents a stream reads: the validation documents, then the rest, over and over."""
    return list(itertools.islice(itertools.chain(texts, itertools.cycle(texts[val_docs:])), n))


def chained_digest(docs: list[str]) -> str:
    h = RecordHasher()
    for d in docs:
        h.update(d)
    return h.hexdigest()


TINY = ["--model.flavor", "debug", "--train.seq_len", "32", "--train.batch_size", "2", "--train.steps", "3",
        "--train.val_every", "3", "--train.val_batches", "1", "--train.device", "cpu", "--train.threads", "1",
        "--governance.enabled", "false", "--checkpoint.enabled", "false", "--data.val_docs", "2"]


@pytest.mark.parametrize("preset", ALL)
def test_training_on_a_local_copy_reads_exactly_the_texts_written(tmp_path, preset):
    expected, files = lay_out(preset, tmp_path / "hub")
    cfg = load_config(None, [*TINY, "--job.out", str(tmp_path / "run"), "--data.source", preset,
                             "--data.hf_data_dir", str(tmp_path / "hub")])
    trainer = Trainer(cfg, callbacks=[])
    summary = trainer.run()
    assert summary["steps"] == 3 and math.isfinite(summary["final_loss"]) and math.isfinite(summary["final_val_loss"])
    val, train = trainer.data.datasets()
    texts = expected["train"]
    assert val["split"] == "validation" and val["fingerprint"] == documents_fingerprint(texts[:2])
    n = train["records_read"]
    assert n > 2 and train["fingerprint"] == chained_digest(read_order(texts, 2, n))
    assert train["data_files"] == files["train"] and train["hf_split"] == "train"


def test_training_on_a_downloaded_preset_holds_out_by_hash(tmp_path):
    expected, _ = lay_out("wikitext-103", tmp_path / "hub")
    cfg = load_config(None, [*TINY, "--job.out", str(tmp_path / "run"), "--data.source", "wikitext-103",
                             "--data.hf_data_dir", str(tmp_path / "hub"), "--data.streaming", "false",
                             "--data.val_fraction", "0.3"])
    trainer = Trainer(cfg, callbacks=[])
    trainer.run()
    train, val = trainer.data.datasets()
    assert train["source_fingerprint"] == chained_digest(expected["train"])
    assert train["num_documents"] + val["num_documents"] == len(expected["train"]) and val["num_documents"] > 0


# ---- a wrong or incomplete copy: one line naming the key and the fix -------------------------------------


def train_error(capsys, tmp_path: Path, preset: str, root: Path, *flags: str) -> str:
    code = main(["train", *TINY, "--job.out", str(tmp_path / "run"), "--data.source", preset,
                 "--data.hf_data_dir", str(root), *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("preset,write,missing", [
    ("c4", lambda r: write_c4(r, "en", {"train": [0, 2]}), "en/c4-train.00001-of-01024.json.gz"),
    ("c4-realnewslike", lambda r: write_c4(r, "realnewslike", {"train": [1]}),
     "realnewslike/c4-train.00000-of-00512.json.gz"),
    ("wikitext-103", lambda r: write_wikitext(r, {"train": [1]}), "wikitext-103-raw-v1/train-00000-of-00002.parquet"),
    ("bookcorpus", lambda r: write_bookcorpus(r, [0, 1, 3]), "plain_text/train-00002-of-00010.parquet"),
])
def test_a_missing_shard_is_named(tmp_path, capsys, preset, write, missing):
    write(tmp_path / "hub")
    err = train_error(capsys, tmp_path, preset, tmp_path / "hub")
    assert f"data.hf_data_dir: {missing!r} is missing" in err
    assert "download it" in err


def test_shards_of_two_downloads_are_refused(tmp_path):
    write_wikitext(tmp_path, {"train": [0]})
    write_text_parquet(tmp_path / "wikitext-103-raw-v1" / "train-00001-of-00003.parquet", [" x \n"])
    with pytest.raises(DataError, match=r"data\.hf_data_dir: the train shards .* say 2 and 3 shards in all"):
        open_source(data_cfg("wikitext-103", tmp_path))


LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 318817213\n".format("0" * 64)


@pytest.mark.parametrize("preset,path", [
    ("c4", "en/c4-train.00000-of-01024.json.gz"),
    ("c4-realnewslike", "realnewslike/c4-train.00000-of-00512.json.gz"),
    ("wikitext-103", "wikitext-103-raw-v1/train-00000-of-00002.parquet"),
    ("bookcorpus", "plain_text/train-00000-of-00010.parquet"),
])
def test_a_git_lfs_pointer_instead_of_the_data_is_named(tmp_path, capsys, preset, path):
    (tmp_path / "hub" / path).parent.mkdir(parents=True)
    (tmp_path / "hub" / path).write_text(LFS_POINTER)
    err = train_error(capsys, tmp_path, preset, tmp_path / "hub")
    assert f"data.hf_data_dir: {path!r} is a Git LFS pointer, not the data" in err and "git lfs pull" in err


def test_shards_left_as_lfs_pointers_after_the_pulled_ones_are_not_downloaded(tmp_path):
    """`git lfs pull --include` of the first shards leaves the others as pointers: a subset, unless a
    pointer sits between two pulled shards."""
    expected = write_c4(tmp_path, "en", {"train": 2})
    for k in (2, 3):
        (tmp_path / "en" / c4_name("train", k, 1024)).write_text(LFS_POINTER)
    src = open_source(data_cfg("c4", tmp_path))
    assert src.describe()["shards"] == "2 of 1024" and list(src.documents()) == expected["train"]
    write_c4(tmp_path, "en", {"train": [3]})
    with pytest.raises(DataError, match=r"data\.hf_data_dir: 'en/c4-train\.00002-of-01024\.json\.gz' is a Git LFS "
                                        r"pointer, not the data; run `git lfs pull`"):
        open_source(data_cfg("c4", tmp_path))


def test_a_file_in_the_wrong_format_is_named(tmp_path):
    plain = tmp_path / "en" / "c4-train.00000-of-01024.json.gz"
    plain.parent.mkdir()
    plain.write_text('{"text": "not compressed", "timestamp": "2019-04-25T12:57:54Z", "url": "https://x"}\n')
    with pytest.raises(DataError, match=r"data\.hf_data_dir: 'en/c4-train\.00000-of-01024\.json\.gz' is not gzip"):
        open_source(data_cfg("c4", tmp_path))
    (tmp_path / "wt" / "wikitext-103-raw-v1").mkdir(parents=True)
    (tmp_path / "wt" / "wikitext-103-raw-v1" / "train-00000-of-00002.parquet").write_text("text\nnot parquet\n")
    with pytest.raises(DataError, match=r"'wikitext-103-raw-v1/train-00000-of-00002\.parquet' is not a Parquet file"):
        open_source(data_cfg("wikitext-103", tmp_path / "wt"))


def test_a_truncated_shard_stops_with_one_line(tmp_path, capsys):
    write_c4(tmp_path / "hub", "en", {"train": 2}, per_shard=3)
    shard = tmp_path / "hub" / "en" / c4_name("train", 1, 1024)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    # the first shard is whole: validation takes 2 of its records, training reads the third, then fails
    err = train_error(capsys, tmp_path, "c4", tmp_path / "hub")
    assert "data.source: cannot read 'allenai/c4' (config 'en', split 'train') after 3 records: EOFError" in err
    assert err.endswith("; download the files under data.hf_data_dir again")


def test_the_config_folder_instead_of_the_repository_is_named(tmp_path, capsys):
    write_c4(tmp_path / "c4", "en", {"train": 1})
    err = train_error(capsys, tmp_path, "c4", tmp_path / "c4" / "en")
    assert err.endswith(f"holds the en files itself; set data.hf_data_dir to its parent {str(tmp_path / 'c4')!r}")
    write_bookcorpus(tmp_path / "bc", 1)
    with pytest.raises(DataError, match=r"set data\.hf_data_dir to its parent"):
        open_source(data_cfg("bookcorpus", tmp_path / "bc" / "plain_text"))


def test_another_config_only_is_named_with_what_is_there(tmp_path):
    write_c4(tmp_path, "realnewslike", {"train": 1})
    (tmp_path / ".git").mkdir()
    with pytest.raises(DataError, match=r"data\.hf_data_dir: no files match 'en/c4-train\.\*\.json\.gz' under .*"
                                        r"\(it holds realnewslike/\); lay it out like .* en/c4-train\.00000-of-01024"):
        open_source(data_cfg("c4", tmp_path))
    with pytest.raises(DataError, match=r"no files match 'realnewslike/c4-validation\.\*\.json\.gz'"):
        open_source(data_cfg("c4-realnewslike", tmp_path, "--data.hf_split", "validation"))
    with pytest.raises(DataError, match=r"data\.hf_data_dir: .* is not a folder"):
        open_source(data_cfg("c4", tmp_path / "nowhere"))


def test_a_split_or_column_the_preset_lacks_is_named(tmp_path):
    with pytest.raises(DataError, match=r"data\.hf_split: bookcorpus has no split 'validation'; choose one of train"):
        open_source(data_cfg("bookcorpus", tmp_path, "--data.hf_split", "validation"))
    write_text_parquet(tmp_path / "plain_text" / "train-00000-of-00010.parquet", ["a sentence ."], column="sentence")
    with pytest.raises(DataError, match=r"data\.field: record 0 of bookcorpus \(train\) has no field 'text' "
                                        r"\(fields: sentence\); set data\.field"):
        list(open_source(data_cfg("bookcorpus", tmp_path)).documents())
    (tmp_path / "en").mkdir()
    with gzip.open(tmp_path / "en" / c4_name("train", 0, 1024), "wt") as f:
        f.write('{"content": "a doc", "timestamp": "2019-04-25T12:57:54Z", "url": "https://x"}\n')
    with pytest.raises(DataError, match=r"data\.field: record 0 of c4 \(train\) has no field 'text' "
                                        r"\(fields: content, timestamp, url\); set data\.field"):
        list(open_source(data_cfg("c4", tmp_path)).documents())
