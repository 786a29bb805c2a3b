"""steward.data: the stdlib corpus, sources, packing, sharding, resume and validation."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from _hub_layout import write_c4
from steward.config import Data, Train
from steward.data import (
    DataError,
    build_data,
    build_tokenizer,
    open_source,
    pack_windows,
    read_documents,
    split_documents,
    stdlib_corpus,
    tokenize_documents,
)
from steward.data import corpus as corpus_mod

WORDS = ["river", "stone", "lantern", "orchard", "copper", "meadow", "signal", "harbor", "quiet", "amber",
         "falcon", "ledger", "café", "naïve", "東京", "über"]


def make_docs(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"Note {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30))) + "." for i in range(n)]


def write_jsonl(path: Path, docs: list[str], field: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({field: d, "id": i}) + "\n")
    return path


BYTE = build_tokenizer("byte")


# ---- stdlib corpus -----------------------------------------------------------------------------


def test_stdlib_corpus_is_deterministic_and_substantial():
    built = corpus_mod.build_corpus(corpus_mod.stdlib_root())  # no cache at all
    cached = stdlib_corpus()
    assert built.fingerprint == cached.fingerprint
    assert built.documents == cached.documents
    assert len(built.documents) > 3000
    assert built.num_bytes > 1_500_000
    assert all(len(d) >= corpus_mod.MIN_CHARS for d in built.documents)
    assert len(set(built.documents)) == len(built.documents)
    assert any(d.startswith("JSON (JavaScript Object Notation)") for d in built.documents)  # json/__init__.py


def test_corpus_rules_on_a_fake_stdlib(tmp_path):
    root = tmp_path / "lib"
    (root / "pkg").mkdir(parents=True)
    (root / "a.py").write_text(
        '"""Module a: a docstring that is comfortably longer than forty characters."""\n'
        "raise SystemExit('importing this module would stop the interpreter')\n"
        "class Thing:\n"
        '    """Thing holds a value; this docstring is long enough to be a document."""\n'
        "    def get(self):\n"
        '        """Short."""\n'
        "if True:\n"
        "    def helper():\n"
        '        """The helper defined under an if block is still found by the walker."""\n'
    )
    (root / "pkg" / "__init__.py").write_text(
        '"""Package docstring, repeated verbatim in two files to test duplicates."""\n'
    )
    (root / "pkg" / "b.py").write_text('"""Package docstring, repeated verbatim in two files to test duplicates."""\n')
    for skipped in ("test/t.py", "idlelib/x.py", "site-packages/y.py", "pkg/tests/z.py", "pkg/test_w.py"):
        (root / skipped).parent.mkdir(parents=True, exist_ok=True)
        (root / skipped).write_text('"""This docstring lives in a skipped place and must not appear."""\n')
    (root / "broken.py").write_text('"""Broken file docstring long enough to count if parsed."""\ndef (:\n')
    c = corpus_mod.build_corpus(str(root))
    assert c.documents == (
        "Module a: a docstring that is comfortably longer than forty characters.",
        "Thing holds a value; this docstring is long enough to be a document.",
        "The helper defined under an if block is still found by the walker.",
        "Package docstring, repeated verbatim in two files to test duplicates.",
    )
    assert c.fingerprint == corpus_mod.documents_fingerprint(c.documents)


def test_corpus_disk_cache_round_trip_and_integrity(tmp_path):
    c = stdlib_corpus()
    path = tmp_path / "cache.json"
    corpus_mod._save_cached(path, c)
    assert corpus_mod._load_cached(path, c.root) == c
    data = json.loads(path.read_text())
    data["documents"][0] = "tampered"
    path.write_text(json.dumps(data))
    assert corpus_mod._load_cached(path, c.root) is None  # fingerprint no longer matches: rebuild


def test_stdlib_source_and_datasets():
    src = open_source(Data())
    docs = read_documents(src, max_docs=50)
    assert docs == list(stdlib_corpus().documents[:50])
    assert src.records_read == 50
    assert src.describe()["kind"] == "stdlib-docs"


# ---- local sources -----------------------------------------------------------------------------


def test_text_folder_paragraphs_and_files(tmp_path):
    root = tmp_path / "texts"
    (root / "sub").mkdir(parents=True)
    (root / "b.md").write_text("# Title\n\nFirst paragraph\nstill first.\n\n  \n\nSecond.\n")
    (root / "sub" / "a.txt").write_text("Only paragraph of a.\n")
    (root / "a.txt").write_text("Top-level a.\r\n\r\nTwo.\r\n")
    (root / "notes.csv").write_text("ignored,in,a,folder\n")
    (root / ".hidden.txt").write_text("hidden files are skipped\n")
    src = open_source(Data(source=str(root)))
    assert src.kind == "text" and src.finite
    assert list(src.documents()) == [
        "Top-level a.", "Two.", "# Title", "First paragraph\nstill first.", "Second.", "Only paragraph of a."
    ]
    whole = open_source(Data(source=str(root), text_split="file"))
    assert list(whole.documents()) == [
        "Top-level a.\n\nTwo.", "# Title\n\nFirst paragraph\nstill first.\n\n  \n\nSecond.", "Only paragraph of a."
    ]
    assert whole.describe()["num_files"] == 3


def test_jsonl_source_with_field(tmp_path):
    docs = make_docs(5)
    write_jsonl(tmp_path / "d" / "1.jsonl", docs[:3], field="body")
    write_jsonl(tmp_path / "d" / "2.jsonl.gz", docs[3:], field="body")
    src = open_source(Data(source=str(tmp_path / "d"), field="body"))
    assert src.kind == "jsonl"
    assert list(src.documents()) == docs
    single = open_source(Data(source=str(tmp_path / "d" / "1.jsonl"), field="body"))
    assert list(single.documents()) == docs[:3]


def test_parquet_source_reads_in_batches(tmp_path):
    docs = make_docs(2500)
    pq.write_table(pa.table({"text": docs[:1500], "n": list(range(1500))}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"text": docs[1500:] + [None, ""]}), tmp_path / "b.parquet")
    src = open_source(Data(source=str(tmp_path)))
    assert src.kind == "parquet"
    assert list(src.documents()) == docs


def test_missing_field_errors(tmp_path):
    write_jsonl(tmp_path / "x.jsonl", ["hello"], field="content")
    with pytest.raises(DataError, match=r"data\.field: line 1 of .*x\.jsonl has no field 'text' \(fields: content, id\)"):
        list(open_source(Data(source=str(tmp_path / "x.jsonl"))).documents())
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "y.parquet")
    with pytest.raises(DataError, match=r"data\.field: .*y\.parquet' has no column 'text' \(columns: body\)"):
        list(open_source(Data(source=str(tmp_path / "y.parquet"))).documents())


def test_unknown_extension_missing_path_and_mixed_folder(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(DataError, match=r"data\.source: .*data\.csv' has an unknown extension '\.csv'"):
        open_source(Data(source=str(tmp_path / "data.csv")))
    with pytest.raises(DataError, match=r"data\.source: .* is not a file or folder, nor one of stdlib-docs"):
        open_source(Data(source=str(tmp_path / "nope")))
    (tmp_path / "mix").mkdir()
    (tmp_path / "mix" / "a.txt").write_text("x\n")
    write_jsonl(tmp_path / "mix" / "b.jsonl", ["y"])
    with pytest.raises(DataError, match=r"mixes jsonl and text files"):
        open_source(Data(source=str(tmp_path / "mix")))


def test_empty_sources(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"data\.source: folder .* holds no"):
        open_source(Data(source=str(tmp_path / "empty")))
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "a.txt").write_text("\n\n   \n")
    with pytest.raises(DataError, match=r"data\.source: .* holds no documents"):
        read_documents(open_source(Data(source=str(tmp_path / "blank"))))
    with pytest.raises(DataError, match=r"data\.source: .* holds no documents"):
        build_data(Data(source=str(tmp_path / "blank")), Train(seq_len=8, batch_size=2), BYTE, 0, 1)


# ---- Hugging Face sources on local files in the hub layout (the presets: test_data_presets.py) ---


def test_hf_id_with_local_repository_clone(tmp_path):
    expected = write_c4(tmp_path, "en", {"train": 1, "validation": 1})
    (tmp_path / "README.md").write_text(
        "---\nconfigs:\n- config_name: en\n  data_files:\n  - split: train\n    path: en/c4-train.*.json.gz\n"
        "  - split: validation\n    path: en/c4-validation.*.json.gz\n---\n"
    )
    src = open_source(Data(source="hf:allenai/c4", hf_config="en", hf_split="validation", hf_data_dir=str(tmp_path)))
    assert list(src.documents()) == expected["validation"]


def test_stream_fingerprint_follows_records_read(tmp_path):
    write_c4(tmp_path, "en", {"train": 1}, per_shard=6)
    src = open_source(Data(source="c4", hf_data_dir=str(tmp_path)))
    it = src.documents()
    next(it), next(it)
    fp2, n2 = src.fingerprint(), src.records_read
    next(it)
    assert (n2, src.records_read) == (2, 3)
    assert src.fingerprint() != fp2
    saved = src.fingerprint_state()
    again = open_source(Data(source="c4", hf_data_dir=str(tmp_path)))
    it2 = again.documents()
    next(it2), next(it2)
    assert again.fingerprint() == fp2  # same records, same digest
    # resume: restore the state and read on from record 3; same as reading straight through
    rest = list(it)
    resumed = open_source(Data(source="c4", hf_data_dir=str(tmp_path)))
    resumed.load_fingerprint_state(saved)
    assert list(resumed.documents(start=3)) == rest
    assert resumed.fingerprint() == src.fingerprint() and resumed.records_read == 6


# ---- packing, sharding, resume, validation -----------------------------------------------------


def jsonl_source(tmp_path: Path, n: int = 120) -> tuple[Data, list[str]]:
    docs = make_docs(n, seed=7)
    write_jsonl(tmp_path / "corpus.jsonl", docs)
    return Data(source=str(tmp_path / "corpus.jsonl"), val_fraction=0.1), docs


def test_pack_windows_reproduce_the_token_stream():
    tokens = tokenize_documents(BYTE, ["ab", "cdé"])
    assert tokens.dtype == np.uint16
    assert tokens.tolist() == [97, 98, 256, 99, 100, 0xC3, 0xA9, 256]
    w = pack_windows(tokens, seq_len=2)
    assert w.shape == (2, 3)
    assert w.reshape(-1).tolist() == tokens[:6].tolist()


def test_unshuffled_batches_concatenate_to_the_training_tokens(tmp_path):
    data, docs = jsonl_source(tmp_path)
    data.shuffle = False
    train = Train(seq_len=15, batch_size=4)
    dm = build_data(data, train, BYTE, 0, 1)
    train_idx, val_idx = split_documents(docs, data.val_fraction)
    tokens = tokenize_documents(BYTE, [docs[i] for i in train_idx])
    n = len(tokens) // 16
    k = n // 4
    got = torch.cat([dm.train.next_batch() for _ in range(k)])
    assert got.dtype == torch.int64 and got.shape == (4 * k, 16)
    assert got.reshape(-1).tolist() == tokens[: k * 4 * 16].tolist()


def test_rank_slices_partition_the_global_batch(tmp_path):
    data, _ = jsonl_source(tmp_path)
    train = Train(seq_len=15, batch_size=4, seed=5)
    whole = build_data(data, train, BYTE, 0, 1)
    ranks = [build_data(data, train, BYTE, r, 2) for r in range(2)]
    n = whole.train.num_sequences
    seen: list[int] = []
    for step in range(2 * n // 4 + 3):  # more than two epochs
        g = whole.train.next_batch()
        parts = [dm.train.next_batch() for dm in ranks]
        assert all(p.shape == (2, 16) for p in parts)
        assert torch.equal(torch.cat(parts), g)
        seen += whole.train.global_indices(step * 4, 4).tolist()
    first_epoch = seen[:n]
    assert sorted(first_epoch) == list(range(n))  # a permutation: ranks never read the same window twice
    assert seen[n : 2 * n] != first_epoch  # each epoch has its own order
    with pytest.raises(DataError, match=r"train\.batch_size: 4 is not divisible by the data-parallel degree 3"):
        build_data(data, train, BYTE, 0, 3)


def test_resume_at_same_and_other_world_size(tmp_path):
    data, _ = jsonl_source(tmp_path)
    train = Train(seq_len=15, batch_size=4, seed=11)
    ref = build_data(data, train, BYTE, 0, 1)
    n_steps = ref.train.num_sequences // 4 + 5  # crosses an epoch boundary
    reference = [ref.train.next_batch() for _ in range(n_steps)]
    k = 7
    first = build_data(data, train, BYTE, 0, 1)
    for _ in range(k):
        first.train.next_batch()
    state = json.loads(json.dumps(first.train.state_dict()))  # the trainer stores it as JSON
    assert state["batches"] == k
    again = build_data(data, train, BYTE, 0, 1)
    again.train.load_state_dict(state)
    assert all(torch.equal(again.train.next_batch(), reference[s]) for s in range(k, n_steps))
    two = [build_data(data, train, BYTE, r, 2) for r in range(2)]
    for dm in two:
        dm.train.load_state_dict(state)
    for s in range(k, n_steps):
        assert torch.equal(torch.cat([dm.train.next_batch() for dm in two]), reference[s])
    other = build_data(data, Train(seq_len=15, batch_size=4, seed=12), BYTE, 0, 1)
    with pytest.raises(DataError, match=r"checkpoint: the data state was saved with seed=11"):
        other.train.load_state_dict(state)


def test_validation_is_deterministic_and_disjoint(tmp_path):
    data, docs = jsonl_source(tmp_path)
    train = Train(seq_len=15, batch_size=4)
    dm = build_data(data, train, BYTE, 0, 1)
    train_idx, val_idx = split_documents(docs, data.val_fraction)
    assert set(train_idx).isdisjoint(val_idx) and len(train_idx) + len(val_idx) == len(docs)
    assert 0 < len(val_idx) < len(docs) // 4
    # the held-out documents depend on neither the seed, the world size nor the document order
    assert split_documents(list(reversed(docs)), data.val_fraction)[1] == sorted(len(docs) - 1 - i for i in val_idx)
    val_tokens = tokenize_documents(BYTE, [docs[i] for i in val_idx])
    many = dm.val_batches(50)  # more than the validation set holds: wraps around
    assert all(torch.equal(a, b) for a, b in zip(many, dm.val_batches(50)))
    flat = torch.cat(many).reshape(-1).tolist()
    n_val = dm.num_val_sequences
    assert flat[: n_val * 16] == val_tokens[: n_val * 16].tolist()
    assert flat[n_val * 16 : n_val * 16 + 16] == val_tokens[:16].tolist()
    other = build_data(data, Train(seq_len=15, batch_size=4, seed=99), BYTE, 1, 2)
    assert torch.equal(other.val_batches(3)[2], dm.val_batches(3)[2][2:])
    rows = dm.datasets()
    assert [r["split"] for r in rows] == ["train", "validation"]
    assert rows[0]["num_documents"] + rows[1]["num_documents"] == len(docs)
    assert rows[1]["num_tokens"] == len(val_tokens)
    assert rows[0]["fingerprint"] != rows[1]["fingerprint"]
    assert rows[0]["source"] == data.source and rows[0]["kind"] == "jsonl"


def test_validation_too_small_is_a_clear_error(tmp_path):
    data, docs = jsonl_source(tmp_path, n=30)
    _, val_idx = split_documents(docs, data.val_fraction)
    n_val = len(tokenize_documents(BYTE, [docs[i] for i in val_idx]))
    with pytest.raises(DataError, match=rf"validation split has {n_val} tokens.*lower train\.seq_len or raise data\.val_fraction"):
        build_data(data, Train(seq_len=n_val, batch_size=2), BYTE, 0, 1)
    with pytest.raises(DataError, match=r"training documents give \d+ tokens, fewer than one sequence.*lower train\.seq_len"):
        build_data(data, Train(seq_len=100_000, batch_size=2), BYTE, 0, 1)


def test_stream_loader_packs_after_val_docs_and_resumes_exactly(tmp_path):
    docs = write_c4(tmp_path, "en", {"train": 3}, per_shard=10)["train"]
    data = Data(source="c4", hf_data_dir=str(tmp_path), val_docs=5)
    train = Train(seq_len=31, batch_size=4)
    ref = build_data(data, train, BYTE, 0, 1)
    assert ref.datasets()[0]["split"] == "validation" and ref.datasets()[0]["num_documents"] == 5
    val_tokens = tokenize_documents(BYTE, docs[:5])
    assert torch.cat(ref.val_batches(1)).reshape(-1).tolist() == val_tokens[: 4 * 32].tolist()
    train_tokens = tokenize_documents(BYTE, docs[5:])
    epoch_batches = len(train_tokens) // (4 * 32)
    n_steps = epoch_batches + 4  # the stream ends and starts over after the validation documents
    reference = [ref.train.next_batch() for _ in range(n_steps)]
    assert torch.cat(reference[:epoch_batches]).reshape(-1).tolist() == train_tokens[: epoch_batches * 128].tolist()
    assert ref.train.epoch == 1
    fp_before = ref.source.fingerprint()

    k = epoch_batches - 1
    first = build_data(data, train, BYTE, 0, 1)
    for _ in range(k):
        first.train.next_batch()
    state = json.loads(json.dumps(first.train.state_dict()))
    assert state["records_read"] == first.source.records_read > 5
    two = [build_data(data, train, BYTE, r, 2) for r in range(2)]
    for dm in two:
        dm.train.load_state_dict(state)
    for s in range(k, n_steps):
        assert torch.equal(torch.cat([dm.train.next_batch() for dm in two]), reference[s])
    assert two[0].source.fingerprint() == fp_before and two[0].source.records_read == ref.source.records_read
    row = ref.datasets()[1]
    assert row["split"] == "train" and row["records_read"] == ref.source.records_read
    assert row["fingerprint"] == fp_before


def test_stream_with_only_validation_documents_errors(tmp_path):
    write_c4(tmp_path, "en", {"train": 1}, per_shard=3)
    dm = build_data(Data(source="c4", hf_data_dir=str(tmp_path), val_docs=10), Train(seq_len=8, batch_size=2), BYTE, 0, 1)
    with pytest.raises(DataError, match=r"no documents after the first data\.val_docs=3.*lower data\.val_docs"):
        dm.train.next_batch()
