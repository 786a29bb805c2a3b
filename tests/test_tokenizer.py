"""steward.data.tokenizer and `steward tokenizer train`."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from steward.cli.main import main
from steward.config import Data, Train
from steward.data import DataError, build_data, build_tokenizer, train_bpe

SAMPLE = "Grüße aus Köln — 東京 🚀\n\n\tindented  spaces and a tab; ASCII too."

WORDS = ["lantern", "orchard", "copper", "meadow", "signal", "harbor", "amber", "falcon", "ledger", "façade",
         "über", "río", "the", "a", "of", "and"]


def docs(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))) + "." for _ in range(n)]


def test_byte_tokenizer_round_trip():
    tok = build_tokenizer("byte")
    assert (tok.vocab_size, tok.eos_id, tok.name) == (257, 256, "byte")
    ids = tok.encode(SAMPLE)
    assert ids == list(SAMPLE.encode("utf-8")) and max(ids) < 256
    assert len(ids) > len(SAMPLE)  # multi-byte characters
    assert tok.decode(ids) == SAMPLE
    assert tok.decode(tok.encode("a") + [tok.eos_id] + tok.encode("é")) == "a<|endoftext|>é"
    assert tok.fingerprint == build_tokenizer("byte").fingerprint
    with pytest.raises(ValueError, match="outside 0..256"):
        tok.decode([300])


def test_bpe_train_round_trip_and_eos(tmp_path):
    out = tmp_path / "tok" / "bpe.json"
    path = train_bpe(docs(300), 320, out)
    assert path == out and out.is_file()
    assert [p.name for p in out.parent.iterdir()] == ["bpe.json"]  # no temporary file left behind
    tok = build_tokenizer(str(out))
    assert tok.vocab_size == 320
    assert tok.eos_id == 0 and tok.decode([tok.eos_id]) == "<|endoftext|>"
    text = "the copper lantern of the harbor and the amber falcon"
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) < len(text.encode()) / 2  # merges learned from the corpus
    assert tok.decode(tok.encode(SAMPLE)) == SAMPLE  # byte-level: unseen characters round-trip too
    assert tok.fingerprint == build_tokenizer(str(out)).fingerprint
    train_bpe(docs(300), 320, tmp_path / "again.json")
    assert build_tokenizer(str(tmp_path / "again.json")).fingerprint == tok.fingerprint  # deterministic
    # packing with it: uint16 tokens, eos between documents
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs(60, seed=1)))
    dm = build_data(Data(source=str(src), tokenizer=str(out)), Train(seq_len=16, batch_size=2), tok, 0, 1)
    assert dm.train.windows.dtype == np.uint16
    assert int(dm.train.next_batch().max()) < tok.vocab_size
    assert (dm.train.windows == tok.eos_id).any()


def test_tokenizer_file_errors(tmp_path):
    with pytest.raises(DataError, match=r"data\.tokenizer: no such file"):
        build_tokenizer(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"data\.tokenizer: .* is not a tokenizers JSON file"):
        build_tokenizer(str(bad))
    from tokenizers import Tokenizer, models, pre_tokenizers

    plain = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    plain.pre_tokenizer = pre_tokenizers.Whitespace()
    plain.save(str(tmp_path / "noeos.json"))
    with pytest.raises(DataError, match=r"data\.tokenizer: .*noeos\.json' has no end-of-text token"):
        build_tokenizer(str(tmp_path / "noeos.json"))
    with pytest.raises(DataError, match="vocab size 100 is too small"):
        train_bpe(["x"], 100, tmp_path / "small.json")


def test_tokenizer_train_cli(tmp_path, capsys):
    folder = tmp_path / "texts"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i}.txt").write_text("\n\n".join(docs(30, seed=i)))
    out = tmp_path / "cli.json"
    rc = main(["tokenizer", "train", "--source", str(folder), "--vocab-size", "320", "--out", str(out), "--json",
               "--data.max_docs", "100"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["out"] == str(out) and result["vocab_size"] == 320 and result["eos_id"] == 0
    assert 80 <= result["documents"] < 100  # max_docs, less the held-out validation paragraphs
    tok = build_tokenizer(str(out))
    assert tok.fingerprint == result["fingerprint"]
    assert tok.decode(tok.encode("amber harbor")) == "amber harbor"

    rc = main(["tokenizer", "train", "--source", str(tmp_path / "nope"), "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "data.source" in err
    rc = main(["tokenizer", "train", "--source", str(folder), "--vocab-size", "10", "--out", str(tmp_path / "x.json")])
    assert rc == 2 and "--vocab-size: must be at least 257" in capsys.readouterr().err


def test_tokenizer_train_cli_on_the_fairness_training_split(tmp_path, capsys):
    """--source fairness: the training split of fairness.data (madlibs here) for that seed, never its
    evaluation split; a missing dataset is a one-line error naming fairness.data."""
    from steward.classify.data import identity_data_fingerprint, load_splits
    from steward.config import load_config

    out = tmp_path / "fair.json"
    # the run's own flags, fairness.enabled included (--source fairness implies train.task classify)
    args = ["--fairness.madlibs_size", "300", "--train.seed", "3", "--fairness.enabled", "true"]
    rc = main(["tokenizer", "train", "--source", "fairness", "--vocab-size", "4096", "--out", str(out), "--json", *args])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    train, _ = load_splits(load_config(None, ["--train.task", "classify", *args]))
    assert result["documents"] == 300 and result["data_fingerprint"] == identity_data_fingerprint(train)
    tok = build_tokenizer(str(out))
    assert tok.decode(tok.encode(train.texts[0])) == train.texts[0]
    rc = main(["tokenizer", "train", "--source", "fairness", "--out", str(tmp_path / "x.json"),
               "--fairness.data", str(tmp_path / "civil.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "fairness.data" in err
    rc = main(["tokenizer", "train", "--source", "fairness", "--field", "body", "--out", str(tmp_path / "x.json")])
    assert rc == 2 and "--field: not used with --source fairness" in capsys.readouterr().err
