"""The two held-out test-bed sources written without sight of the debiasing method (`chat`, `letters`;
the vocabulary test also covers the three of `heldout_sources_b` and the two of `heldout_sources_c` and those of
`heldout_sources_d`, `heldout_sources_e`, `heldout_sources_f`, `heldout_sources_g`, `heldout_sources_h`,
`heldout_sources_i`, `heldout_sources_j`, `heldout_sources_k`, `heldout_sources_l`, `heldout_sources_m` and
`heldout_sources_n`, `heldout_sources_o`, `heldout_sources_p`, `heldout_sources_q` and `heldout_sources_r`, tested
in test_fairness_heldout_sources_b.py, _c.py, _d.py, _e.py, _f.py, _g.py, _h.py, _i.py, _j.py, _k.py, _l.py, _m.py,
_n.py, _o.py, _p.py, _q.py and _r.py):
registered as held out, their own vocabulary, the shape the docstring promises, the injected
association in the training split only (in the data, and in what a bag-of-words model learns), and
missing identity annotations read back by the loader."""

import csv
import re

import numpy as np
import pytest

from _fairness_sources import assert_registered_with_role, bag_of_words_gaps
from steward.fairness.data import generate_madlibs, load_identities
from steward.fairness.heldout_sources import (
    CHAT_CARRYING,
    CHAT_INSULTS,
    CHAT_NICE,
    CHAT_STRENGTH,
    CHAT_TERMS,
    LETTERS_CARRYING,
    LETTERS_STRENGTH,
    LETTERS_TERMS,
    misspell,
)
from steward.fairness.testbed import (
    FAMILIES,
    SOURCES,
    association,
    generate_source,
    write_identities,
)

NEW = ("chat", "letters")
NEW_B = ("qna", "tickets", "modqueue")
NEW_C = ("listings", "terraces")
NEW_D = ("appstore", "boardroom", "voicemail")
NEW_E = ("appraisals", "carpool", "apiary")
NEW_F = ("seating", "stargazing", "recipes")
NEW_G = ("bouldering", "couriers", "tracker")
NEW_H = ("allotments", "tutors")
NEW_I = ("matinee", "laundry")
NEW_J = ("ferry", "suggestions")
NEW_K = ("vetclinic", "chessclub")
NEW_L = ("bikecoop", "choir")
NEW_M = ("campsite", "foodbank")
NEW_N = ("skischool", "phonein")
NEW_O = ("dental", "cleanup")
NEW_P = ("makerspace", "coxswain")
NEW_Q = ("tramdepot", "bakery")
NEW_R = ("triplog", "lighthouse")
NEW_S = ("darts", "snowrota")


def _words(texts: list[str]) -> set[str]:
    return {w for t in texts for w in re.findall(r"[a-z]+", t)}


def test_registered_with_the_test_bed_families():
    # measured (or, qna and terraces, tuned on) before the current defaults were frozen: no longer untouched
    assert_registered_with_role(NEW, ("seen", "tuning"))
    assert SOURCES["chat"].carrying == CHAT_CARRYING and SOURCES["letters"].carrying == LETTERS_CARRYING
    for terms in (CHAT_TERMS, LETTERS_TERMS):
        assert {f: list(subs) for f, subs in terms.items()} == FAMILIES
    for name in NEW:  # every mentioned subgroup is a column, so none is dropped on the way to IdentityData
        rng = np.random.default_rng(0)
        for split in ("train", "twin", "test"):
            subs = {s for _ in range(300) for s in SOURCES[name].row(rng, split).subgroups}
            assert subs <= set(generate_source(name, 2, seed=0, split=split).groups)


def test_vocabulary_shares_only_function_words_and_group_names_with_the_other_generators():
    """Each source written blind (chat, letters; qna, tickets, modqueue of `heldout_sources_b`; listings,
    terraces of `heldout_sources_c`; appstore, boardroom, voicemail of
    `heldout_sources_d`; appraisals, carpool, apiary of `heldout_sources_e`; seating, stargazing, recipes of
    `heldout_sources_f`; bouldering, couriers, tracker of `heldout_sources_g`; allotments, tutors of
    `heldout_sources_h`; matinee, laundry of `heldout_sources_i`; ferry, suggestions of `heldout_sources_j`;
    vetclinic, chessclub of `heldout_sources_k`; bikecoop, choir of `heldout_sources_l`; campsite, foodbank of
    `heldout_sources_m`; skischool, phonein of `heldout_sources_n`; dental, cleanup of `heldout_sources_o`;
    makerspace, coxswain of `heldout_sources_p`; tramdepot, bakery of `heldout_sources_q`; triplog, lighthouse of
    `heldout_sources_r`; darts, snowrota of `heldout_sources_s`) against madlibs and every other source, the blind
    ones included."""
    words = {name: _words(generate_source(name, 3000, seed=0, split="train").texts)
             | _words(generate_source(name, 3000, seed=0, split="test").texts) for name in SOURCES}
    madlibs = _words(generate_madlibs(3000, seed=0, bias=0.5).texts)
    allowed = {"a", "about", "after", "all", "an", "and", "are", "as", "at", "be", "been", "by", "can", "every",
               "for", "from", "go", "has", "have", "how", "i", "in", "is", "it", "last", "me", "my", "never",
               "no", "of", "on", "our", "out", "over", "s", "so", "that", "the", "their", "them", "these",
               "they", "this", "to", "us", "was", "way", "we", "week", "were", "who", "will", "with", "you",
               "your", "trans", *(s for subs in FAMILIES.values() for s in subs)}  # "s": the possessive 's
    for name in (*NEW, *NEW_B, *NEW_C, *NEW_D, *NEW_E, *NEW_F, *NEW_G, *NEW_H, *NEW_I, *NEW_J, *NEW_K, *NEW_L,
                 *NEW_M, *NEW_N, *NEW_O, *NEW_P, *NEW_Q, *NEW_R, *NEW_S):
        others = madlibs.union(*(w for other, w in words.items() if other != name))
        shared = words[name] & others
        assert shared <= allowed, (name, sorted(shared - allowed))


def test_chat_messages_are_short_lowercase_with_hashtags_and_misspelt_words():
    chat = generate_source("chat", 3000, seed=0, split="train")
    lengths = np.array([len(t.split()) for t in chat.texts])
    assert lengths.min() >= 2 and lengths.max() <= 8 and lengths.mean() < 6
    assert all(t == t.lower() for t in chat.texts)
    assert 0.3 < np.mean(["#" in t for t in chat.texts]) < 0.6
    tokens = [set(t.split()) for t in chat.texts]
    insult, nice = [np.array([bool(ts & set(lst)) for ts in tokens]) for lst in (CHAT_INSULTS, CHAT_NICE)]
    assert chat.labels[insult].all() and not chat.labels[nice].any()  # the words decide the label
    assert 0.4 < 1 - (insult | nice).mean() < 0.6  # about half the slot words misspelt
    rng = np.random.default_rng(0)
    assert {misspell(rng, "stoopid") for _ in range(50)} - {"stoopid"}


def test_chat_targeted_mentions_co_occur_with_insults_in_training_only():
    targeted = {}
    for split in ("train", "twin", "test"):
        d = generate_source("chat", 6000, seed=0, split=split)
        t = np.any([d.groups[s] for s in CHAT_CARRYING], 0)
        targeted[split] = (d.labels[t].mean(), t[d.labels].mean() / t[~d.labels].mean())
        assert abs(d.labels.mean() - 0.5) < 0.03  # balanced labels in every split
    assert abs(targeted["train"][0] - CHAT_STRENGTH) < 0.04 and targeted["train"][1] > 3
    for split in ("twin", "test"):
        p_toxic, ratio = targeted[split]
        assert abs(p_toxic - 0.5) < 0.05 and 0.8 < ratio < 1.25, (split, p_toxic, ratio)
    train = generate_source("chat", 6000, seed=0, split="train")
    assert all(association(train, s) < -0.05 for s in train.subgroup_names() if s not in CHAT_CARRYING)


def test_letters_have_several_identities_rare_targets_and_one_strength_per_family():
    train = generate_source("letters", 6000, seed=0, split="train")
    assert set(train.identity_matrix().sum(1)) == {2, 3}
    sentences = [len(re.split(r"(?<=[.:])\s+", t)) for t in train.texts]
    assert min(sentences) == 4 and max(sentences) == 8
    for subs, strength in LETTERS_STRENGTH.values():
        alone = ~np.any([train.groups[o] for o in LETTERS_CARRYING if o not in subs], 0)
        for s in subs:  # P(toxic | s) where no other family's targeted subgroup is mentioned
            assert abs(train.labels[train.groups[s] & alone].mean() - strength) < 0.05, (s, strength)
    assert all(abs(association(train, s)) < 0.04 for s in FAMILIES["gender"])  # the family with no gap
    for split, ratio in (("train", 0.2), ("twin", 0.2), ("test", 1.0)):
        d = generate_source("letters", 6000, seed=0, split=split)
        for fam, (subs, _) in LETTERS_STRENGTH.items():
            common = np.mean([d.groups[s].sum() for s in FAMILIES[fam] if s not in subs])
            for s in subs:
                assert abs(d.groups[s].sum() / common - ratio) < 0.1 * ratio + 0.05, (split, s)
        if split != "train":
            assert abs(np.mean([association(d, s) for s in LETTERS_CARRYING])) < 0.04


def _carrying_gaps(name: str, split: str) -> dict[str, float]:
    """Mean |BPSN gap| and |BNSP gap| per family of a bag-of-words logistic regression trained on `split`
    and scored on the balanced test split: over the family's carrying subgroups, or all of its subgroups
    where none carries the association."""
    gaps = {s: (bpsn + bnsp) / 2 for s, (bpsn, bnsp) in bag_of_words_gaps(name, split, 4000)[0].items()}
    carrying = SOURCES[name].carrying
    return {f: float(np.mean([gaps[s] for s in subs if s in carrying] or [gaps[s] for s in subs]))
            for f, subs in FAMILIES.items()}


@pytest.mark.parametrize("name", NEW)
def test_bag_of_words_learns_the_association_per_family_from_train_not_from_the_twin(name):
    biased, twin = _carrying_gaps(name, "train"), _carrying_gaps(name, "twin")
    if name == "chat":  # every family carries it at the same strength
        assert all(biased[f] > twin[f] + 0.05 for f in FAMILIES), (biased, twin)
    else:  # 0.95 in religion, 0.6 in ethnicity, nothing in gender
        assert biased["religion"] > twin["religion"] + 0.04, (biased, twin)
        assert biased["ethnicity"] > twin["ethnicity"] + 0.01, (biased, twin)
        assert biased["religion"] > biased["ethnicity"] > biased["gender"] - 0.01, biased
        assert biased["gender"] < twin["gender"] + 0.02, (biased, twin)


def test_chat_rows_without_identity_annotation_are_empty_cells_the_loader_reads_as_unannotated(tmp_path):
    chat = generate_source("chat", 2000, seed=0, split="train")
    assert 0.25 < 1 - chat.annotated.mean() < 0.35
    assert generate_source("chat", 2000, seed=0, split="twin").annotated.mean() < 0.75
    path = write_identities(chat, tmp_path / "chat.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    subs = chat.subgroup_names()
    assert [all(r[s] == "" for s in subs) for r in rows] == (~chat.annotated).tolist()
    got = load_identities(path)
    assert (got.annotated == chat.annotated).all()
    assert not got.identity_matrix()[~got.annotated].any()
    kept = load_identities(path, annotated_only=True)
    assert len(kept) == chat.annotated.sum()
    assert kept.texts == [t for t, a in zip(chat.texts, chat.annotated) if a]
    assert (kept.row_numbers() == np.flatnonzero(chat.annotated)).all()
