"""fairness.identity_words remove: which words the rule takes (per label class, min_count, precision,
unannotated rows), how they are taken out of texts, and that a trained run keeps them: in summary.json, in
the checkpoint, in the tokenizer `steward fairness eval` loads, and in the resume check."""

import json

import numpy as np
import pytest

from _adversary_runs import TINY
from steward.config import ConfigError, load_config
from steward.fairness.data import IdentityData
from steward.fairness.identity_words import IdentityWordFilter, learn_identity_words, words_of
from steward.train.checks import check_job


def _rows(spec: list[tuple[str, int, str | None, int]]) -> IdentityData:
    """(text, label, subgroup or None, copies) -> a data set with one family {a, b} and the last column
    unannotated where the subgroup is '?'."""
    texts, labels, subs = [], [], []
    for text, y, sub, copies in spec:
        texts += [text] * copies
        labels += [y] * copies
        subs += [sub] * copies
    groups = {g: np.array([s == g for s in subs]) for g in ("a", "b")}
    annotated = np.array([s != "?" for s in subs])
    return IdentityData(texts, np.array(labels), groups, {"fam": ["a", "b"]}, annotated)


def test_the_rule_takes_words_that_name_one_subgroup_in_each_label_class():
    data = _rows([
        ("the Alpha rider waved", 0, "a", 6), ("the alpha rider swore filth", 1, "a", 6),
        ("the beta rider waved", 0, "b", 6), ("the beta rider swore filth", 1, "b", 8),
        ("beta filth filth", 1, "a", 1),  # beta names b in 8/9 toxic rows: still above 0.8
        ("gamma rider waved", 0, "a", 4), ("gamma rider swore", 1, "a", 5),  # 4 non-toxic rows < min_count 5
        ("delta rider waved", 0, "a", 5), ("delta rider swore", 1, "b", 5),  # names a or b by the label only
        ("vile alpha", 1, "a", 9), ("vile words", 0, None, 5),  # vile: a only through the label
        ("alpha unannotated", 0, "?", 50),  # not counted
    ])
    assert learn_identity_words(data, min_count=5, precision=0.8) == ["alpha", "beta"]
    assert learn_identity_words(data, min_count=4, precision=0.8) == ["alpha", "beta", "gamma"]
    assert learn_identity_words(data, min_count=5, precision=0.9) == ["alpha"]  # beta: 8/9 toxic rows
    empty = IdentityData(["x"] * 10, np.array([0, 1] * 5), {}, {})
    assert learn_identity_words(empty, min_count=1, precision=0.8) == []


def test_the_filter_removes_whole_words_in_any_case_and_keeps_the_rest():
    class Chars:
        vocab_size, eos_id = 300, 256

        def encode_batch(self, texts):
            return [[ord(c) for c in t] for t in texts]

        def encode(self, text):
            return self.encode_batch([text])[0]

    f = IdentityWordFilter(Chars(), ["black", "o"])
    assert f.clean("The BLACK cat, black-ish; blackboard o'neil O") == "The cat, -ish; blackboard 'neil"
    assert f.encode_batch(["a black b"]) == [[ord(c) for c in "a b"]] and f.encode("Black") == []
    assert f.vocab_size == 300 and f.eos_id == 256  # everything else is the wrapped tokenizer's
    assert IdentityWordFilter(Chars(), []).clean("a  black ") == "a  black "
    assert words_of("Ana's black-ish_cat 9") == {"ana", "s", "black", "ish", "cat", "9"}


WORDS = [*TINY, "--fairness.madlibs_size", "400", "--fairness.identity_words", "remove",
         "--fairness.identity_words_min_count", "2"]


def test_a_run_records_its_words_and_every_later_use_removes_them(tmp_path):
    from steward.classify.trainer import ClassifyTrainer
    from steward.fairness.data import madlibs_families
    from steward.jobs import load_trained

    out = tmp_path / "run"
    trainer = ClassifyTrainer(load_config(None, [*WORDS, "--checkpoint.every", "3", "--job.out", str(out)]),
                              callbacks=[])
    trainer.run()
    words = json.loads((out / "summary.json").read_text())["identity_words"]
    terms = {w for subs in madlibs_families().values() for s in subs for w in words_of(s)}
    assert words and set(words) <= words_of(" ".join(trainer.data.train_data.texts))
    assert len(set(words) & terms) >= 5, words
    assert isinstance(trainer.tokenizer, IdentityWordFilter) and trainer.tokenizer.words == words
    # the training rows were encoded without the words
    text = next(t for t in trainer.data.train_data.texts if words_of(t) & set(words))
    assert trainer.tokenizer.encode(text) == trainer.tokenizer.inner.encode(trainer.tokenizer.clean(text))
    assert not words_of(trainer.tokenizer.clean(text)) & set(words)
    loaded = load_trained(out)
    assert isinstance(loaded.tokenizer, IdentityWordFilter) and loaded.tokenizer.words == words
    step = str(out / "checkpoints" / "step-3")
    with pytest.raises(ConfigError, match="fairness.identity_words: .* was trained with the identity words "
                                          "removed; resume with --fairness.identity_words remove"):
        ClassifyTrainer(load_config(None, [*TINY, "--fairness.identity_words", "keep", "--job.out", str(tmp_path / "x"), "--checkpoint.resume", step]),
                        callbacks=[]).run()
    with pytest.raises(ConfigError, match="fairness.identity_words_min_count: .* resume with "
                                          "--fairness.identity_words_min_count 2"):
        ClassifyTrainer(load_config(None, [*WORDS[:-1], "3", "--job.out", str(tmp_path / "y"),
                                           "--checkpoint.resume", step]), callbacks=[]).run()
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_bad_settings_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="fairness.identity_words: remove takes words out of a classifier's "
                                          "texts; set --train.task classify"):
        check_job(load_config(None, ["--model.flavor", "debug", "--fairness.identity_words", "remove"]))
    with pytest.raises(ConfigError, match="fairness.identity_words_precision"):
        load_config(None, [*WORDS, "--fairness.identity_words_precision", "0.5"])
    plain = tmp_path / "plain.csv"
    plain.write_text("text,label\n" + "".join(f"row {i} words,{i % 2}\n" for i in range(40)))
    from steward.classify.trainer import ClassifyTrainer

    with pytest.raises(ConfigError, match="fairness.identity_words: .* has no identity columns to learn the "
                                          "identity words from"):
        ClassifyTrainer(load_config(None, [*TINY[:-1], "none", "--fairness.data", str(plain),
                                           "--fairness.identity_words", "remove",
                                           "--job.out", str(tmp_path / "z")]), callbacks=[]).run()
    assert not (tmp_path / "z").exists()  # refused before the run directory is written: the corrected command runs


def test_auto_removes_them_with_an_adversary_and_a_run_from_before_v8_loads_as_it_trained(tmp_path):
    """'auto' (the default since v8) is 'remove' with an adversary, 'keep' without. A run from before v8 has
    no identity_words in its config.toml (so 'auto') and none in its checkpoint: `load_trained` gives it
    the tokenizer it trained with, and a resume under the new default is refused with the fix."""
    from steward.classify.trainer import ClassifyTrainer
    from steward.jobs import load_trained

    f = load_config(None, TINY).fairness
    assert (f.identity_words, f.removes_identity_words) == ("auto", True)
    assert not load_config(None, [*TINY[:-1], "none"]).fairness.removes_identity_words
    assert not load_config(None, [*TINY, "--fairness.identity_words", "keep"]).fairness.removes_identity_words
    out = tmp_path / "v7"
    ClassifyTrainer(load_config(None, [*TINY, "--fairness.identity_words", "keep", "--checkpoint.every", "3",
                                       "--job.out", str(out)]), callbacks=[]).run()
    cfg = out / "config.toml"
    lines = cfg.read_text().splitlines()
    assert sum(line.startswith("identity_words =") for line in lines) == 1
    cfg.write_text("\n".join(x for x in lines if not x.startswith("identity_words =")) + "\n")
    loaded = load_trained(out)
    assert loaded.cfg.fairness.identity_words == "auto" and not isinstance(loaded.tokenizer, IdentityWordFilter)
    with pytest.raises(ConfigError, match="fairness.identity_words: .* was trained with the identity words kept; "
                                          "resume with --fairness.identity_words keep"):
        ClassifyTrainer(load_config(None, [*TINY, "--job.out", str(tmp_path / "x"), "--checkpoint.resume",
                                           str(out / "checkpoints" / "step-3")]), callbacks=[]).run()


class _Bytes:
    vocab_size = 256

    def encode_batch(self, texts):
        return [list(t.encode()) for t in texts]

    def encode(self, text):
        return self.encode_batch([text])[0]


def test_the_filter_removes_every_word_the_rule_learned_whatever_its_letters():
    """A word is removed exactly when the rule would count it (words_of: its lower case): also where
    Unicode's lower case is longer than the word ('İ' lower-cases to 'i' and a combining dot)."""
    for text in ("İstanbul riders", "ΣΟΦΊΑ riders", "Zoë riders", "x9 riders", "ǅemal riders"):
        learned = sorted(words_of(text) - {"riders"})
        assert IdentityWordFilter(_Bytes(), learned).clean(text) == "riders", (text, learned)
    assert IdentityWordFilter(_Bytes(), ["istanbul"]).clean("İstanbul") == "İstanbul"  # another word


def test_the_filter_removes_exactly_the_listed_words_on_a_long_list():
    """1,000 listed words on 6,000 texts: every listed word goes, every other word stays (its speed is the
    benchmark's business, not a test's)."""
    import random
    import string

    rng = random.Random(0)
    words = sorted({"".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(1000)})
    vocab = words[:200] + ["".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(2000)]
    texts = [" ".join(rng.choices(vocab, k=40)) for _ in range(6000)]
    cleaned = [IdentityWordFilter(_Bytes(), words).clean(t) for t in texts]
    listed = set(words)
    assert not listed & words_of(" ".join(cleaned))
    assert sum(len(t.split()) for t in cleaned) == sum(w not in listed for t in texts for w in t.split())


def test_a_damaged_or_edited_identity_words_state_is_a_one_line_error(tmp_path):
    """load_trained verifies the checkpoint before it reads the words (a damaged file is named, not
    unpickled), and a state whose words are no list of words (edited, manifest re-hashed) is refused
    with the file named, at load and at resume, rather than a traceback or letters taken as words."""
    import torch

    from steward.classify.trainer import ClassifyTrainer
    from steward.jobs import load_trained
    from steward.train.checkpoint import MANIFEST, CheckpointError, sha256_file

    out = tmp_path / "run"
    ClassifyTrainer(load_config(None, [*WORDS, "--checkpoint.every", "3", "--job.out", str(out)]), callbacks=[]).run()
    step = out / "checkpoints" / "step-3"
    state = step / "identity_words" / "rank-0.pt"
    saved = torch.load(state, weights_only=True)
    state.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="identity_words/rank-0.pt is corrupt"):
        load_trained(out)
    manifest = json.loads((step / MANIFEST).read_text())
    for bad in ({**saved, "words": "black"}, {**saved, "words": [3]}, ["black"], {"min_count": 2}):
        torch.save(bad, state)
        manifest["files"]["identity_words/rank-0.pt"] = sha256_file(state)
        (step / MANIFEST).write_text(json.dumps(manifest))
        with pytest.raises(CheckpointError, match="identity_words/rank-0.pt: .*not a list of words"):
            load_trained(out)
        with pytest.raises(ConfigError, match="checkpoint.resume: .*identity_words/rank-0.pt: .*not a list of words"):
            ClassifyTrainer(load_config(None, [*WORDS, "--job.out", str(tmp_path / "x"), "--checkpoint.resume",
                                               str(step)]), callbacks=[]).run()


def test_steward_explain_reads_a_run_s_words_as_it_trained():
    """`steward explain` encodes a text word by word, each after its space (explain.rules.make_instance):
    through the filter a word keeps that space, so its tokens are the ones the run saw in running text,
    and an identity word gets none."""
    from steward.explain.rules import make_instance

    f = IdentityWordFilter(_Bytes(), ["black"])
    assert f.encode(" cat") == _Bytes().encode(" cat") and f.encode("  black ") == []
    inst, plain = make_instance("the Black cat sat", f, " =>"), make_instance("the cat sat", _Bytes(), " =>")
    assert inst.tokens == plain.tokens and inst.tokens == f.encode("the Black cat sat") + f.encode(" =>")
    assert inst.word_index == [0] * 3 + [2] * 4 + [3] * 4 + [-1] * 3


def test_a_run_from_before_v8_resumes_in_its_own_directory_with_the_fix_the_error_names(tmp_path):
    """In its own run directory a resume is compared with config.toml too (no identity_words there:
    'auto'), so the fix the refusal names must also allow that change; following it resumes the run."""
    import re

    from steward.classify.trainer import ClassifyTrainer

    out = tmp_path / "v7"
    ClassifyTrainer(load_config(None, [*TINY, "--fairness.identity_words", "keep", "--checkpoint.every", "2",
                                       "--job.out", str(out)]), callbacks=[]).run()
    cfg = out / "config.toml"
    cfg.write_text("".join(x for x in cfg.read_text().splitlines(True) if not x.startswith("identity_words =")))
    resume = [*TINY, "--checkpoint.every", "2", "--job.out", str(out), "--checkpoint.resume",
              str(out / "checkpoints" / "step-2")]
    with pytest.raises(ConfigError, match="was trained with the identity words kept") as e:
        ClassifyTrainer(load_config(None, resume), callbacks=[]).run()
    fix = re.search(r"resume with (.*?) or start a new run", str(e.value)).group(1).split()
    summary = ClassifyTrainer(load_config(None, [*resume, *fix]), callbacks=[]).run()
    assert summary["steps"] == 3 and "identity_words" not in summary


def test_the_rule_reads_the_binarised_identities_of_a_file_and_every_subgroup_of_a_row(tmp_path):
    """Soft identity fractions count as membership at 0.5 (as the loader binarises them), a row naming two
    subgroups counts for both, rows with no identity value at all are not counted, and a data set
    without an `annotated` mask counts every row."""
    from steward.fairness.data import load_fairness_data

    rows = (["kai waved,0,0.5,0.0", "kai swore,1,0.6,0.0"] * 5 + ["both waved,0,1.0,1.0", "both swore,1,1.0,1.0"] * 5
            + ["lee waved,0,0.49,0.0", "lee swore,1,0.4,0.0"] * 5 + ["kai lee,0,,", "kai lee,1,,"] * 20)
    path = tmp_path / "soft.csv"
    path.write_text("comment_text,target,male,female\n" + "\n".join(rows) + "\n")
    data = load_fairness_data(str(path), split="train", n=0, seed=0, bias=0.0)
    assert learn_identity_words(data, min_count=5, precision=0.8) == ["both", "kai"]
    data.annotated = None  # every row counted: the unannotated "kai lee" rows now outnumber the rest
    assert learn_identity_words(data, min_count=5, precision=0.8) == ["both"]


def test_steward_explain_on_texts_made_only_of_identity_words(tmp_path, capsys):
    """A text whose every word the run removes leaves the model nothing to read: `--text` says so (not
    'give non-empty text'), and `--global` leaves such texts out instead of failing on all of them."""
    from steward.classify.trainer import ClassifyTrainer
    from steward.cli.main import main

    out = tmp_path / "run"
    trainer = ClassifyTrainer(load_config(None, [*WORDS, "--job.out", str(out)]), callbacks=[])
    trainer.run()
    only = " ".join(trainer.data.identity_words[:2])
    assert main(["explain", str(out), "--text", only, "--threads", "1"]) == 2
    assert "--text: the run takes every word of it out" in capsys.readouterr().err
    data = tmp_path / "texts.csv"
    data.write_text("text,label\n" + f"{only},1\n" + "".join(f"the person {i} is kind,{i % 2}\n" for i in range(20)))
    assert main(["explain", str(out), "--global", "--data", str(data), "--json", "--samples", "2",
                 "--threads", "1"]) == 0
    g = json.loads(capsys.readouterr().out)
    assert g["held_out"] + g["fitted_on"] == 20  # the identity-words-only text left out
