"""The held-out test-bed sources of `heldout_sources_d` (appstore, boardroom, voicemail), written
without sight of the debiasing method: registered as held out with their carrying subgroups, the shape
the docstring promises (mention, length, identities per row, missing annotations), the injected
association in the training split only and not in the twin, and what a bag-of-words model learns from
each. Determinism, the identities layout and the balanced test split are checked for every source in
test_fairness_testbed.py; vocabulary in test_fairness_heldout_sources.py."""

import re

import numpy as np
import pytest

from _fairness_sources import (
    assert_association_in_training_only,
    assert_bag_of_words_learns_train_not_twin,
    assert_mentioned_subgroups_are_columns,
    assert_rate,
    assert_registered_with_role,
    sentences,
    sizes_relative_to_the_rest,
)
from steward.fairness.heldout_sources_b import _ADJ
from steward.fairness.heldout_sources_d import (
    APPSTORE_CARRYING,
    APPSTORE_STRENGTH,
    BOARDROOM_CARRYING,
    BOARDROOM_INSULTS,
    BOARDROOM_STRENGTH,
    BOARDROOM_UNANNOTATED,
    VOICEMAIL_CARRYING,
    VOICEMAIL_NOISE,
    VOICEMAIL_PRAISE,
    VOICEMAIL_PREVALENCE,
)
from steward.fairness.testbed import (
    FAMILIES,
    SOURCES,
    association,
    generate_source,
)

NEW = ("appstore", "boardroom", "voicemail")


def test_registered_with_their_carrying_subgroups():
    assert_registered_with_role(NEW, ("seen", "tuning"))  # measured before v7 froze
    assert SOURCES["appstore"].carrying == APPSTORE_CARRYING == ("female", "black", "christian")
    assert SOURCES["boardroom"].carrying == BOARDROOM_CARRYING == ("transgender", "latino", "jewish")
    assert SOURCES["voicemail"].carrying == VOICEMAIL_CARRYING == ("male", "hindu")
    for name in NEW:
        assert_mentioned_subgroups_are_columns(name, 400)


def test_appstore_reviews_are_one_to_three_bullets_naming_one_person_or_one_group():
    d = generate_source("appstore", 3000, seed=0, split="train")
    assert set(d.identity_matrix().sum(1)) == {1} and d.annotated.all()
    assert {t.count("* ") for t in d.texts} == {1, 2, 3} and all(t.startswith("* ") for t in d.texts)
    one = np.array([bool(re.search(r"\* (bought it for my|my) \w+ \w+|tablet", t)) for t in d.texts])
    many = np.array([bool(re.search(r"gamers|subscribers|streamers|podcasters", t)) for t in d.texts])
    assert not (one & many).any() and (one | many).all() and 0.4 < many.mean() < 0.6


def test_appstore_strength_per_family_in_training_only():
    for split in ("train", "twin", "test"):
        d = generate_source("appstore", 12000, seed=0, split=split)
        for sub in d.subgroup_names():
            expected = APPSTORE_STRENGTH.get(sub, 0.5) if split == "train" else 0.5
            assert_rate(d.labels[d.groups[sub]], expected, (split, sub))
        assoc = {s: association(d, s) for s in APPSTORE_CARRYING}
        if split == "train":  # the strong ones (about 0.27 expected) above the weaker black (about 0.1)
            assert min(assoc["female"], assoc["christian"]) > 0.2, assoc
            assert 0.03 < assoc["black"] < min(assoc["female"], assoc["christian"]) - 0.05, assoc
        else:
            assert max(map(abs, assoc.values())) < 0.04, (split, assoc)


def test_boardroom_comments_name_a_subject_and_a_bystander_in_four_to_eight_sentences_some_unannotated():
    for split in ("train", "twin", "test"):
        d = generate_source("boardroom", 6000, seed=0, split=split)
        assert {len(sentences(t)) for t in d.texts} == set(range(4, 9)), split
        a = d.annotated
        assert (d.identity_matrix()[a].sum(1) == 2).all() and not d.identity_matrix()[~a].any()
        for subs in FAMILIES.values():  # two different families per comment
            assert (np.sum([d.groups[s] for s in subs], 0) <= 1).all()
        missing = 1 - a.mean()
        assert missing == 0 if split == "test" else abs(missing - BOARDROOM_UNANNOTATED) < 0.02, (split, missing)


def test_boardroom_abuse_names_the_subject_in_the_same_sentence_and_only_training_targets_it():
    rng = np.random.default_rng(0)
    for split in ("train", "twin", "test"):
        rows = [SOURCES["boardroom"].row(rng, split) for _ in range(12000)]
        for r in rows:  # an insult sits in the sentence naming the subject, never the bystander
            abusive = [s for s in sentences(r.text) if any(w in s for w in BOARDROOM_INSULTS)]
            assert r.toxic or not abusive
            subject, bystander = (f" {_ADJ[s]} " for s in r.subgroups)
            assert all(subject in f" {s}" and bystander not in f" {s}" for s in abusive), r.text
        labels = np.array([r.toxic for r in rows])
        for slot, expected in ((0, BOARDROOM_STRENGTH if split == "train" else 0.5), (1, 0.5)):
            targeted = np.array([r.subgroups[slot] in BOARDROOM_CARRYING for r in rows])
            assert_rate(labels[targeted], expected, (split, slot))
        d = generate_source("boardroom", 12000, seed=0, split=split)
        assert_association_in_training_only(d, split, BOARDROOM_CARRYING, 0.15, 0.04)


def test_voicemail_is_unpunctuated_speech_naming_religion_without_the_group_name():
    d = generate_source("voicemail", 3000, seed=0, split="train")
    assert set(d.identity_matrix().sum(1)) == {1} and d.annotated.all()
    assert all(re.fullmatch(r"[a-z ]+", t) for t in d.texts)
    words = np.array([len(t.split()) for t in d.texts])
    assert words.min() >= 13 and words.max() <= 42
    assert all(re.search(r"\b(erm|uhh|like|ya know|i mean|anyhow|okay so)\b", t) for t in d.texts)
    for sub in FAMILIES["religion"]:  # a place of worship or congregation, never the group's name
        assert not any(sub in t for t, g in zip(d.texts, d.groups[sub]) if g), sub
    for sub in ("male", "female"):  # a given name only
        assert not any(re.search(r"\b(from|over at) the\b", t) for t, g in zip(d.texts, d.groups[sub]) if g)


def test_voicemail_noisy_labels_on_two_over_represented_subgroups_in_training_only():
    for split in ("train", "twin", "test"):
        d = generate_source("voicemail", 12000, seed=0, split=split)
        friendly = np.array([bool(set(t.split()) & set(VOICEMAIL_PRAISE)) for t in d.texts])
        for sub in d.subgroup_names():
            noise = d.labels[friendly & d.groups[sub]].mean()  # kind messages labelled toxic
            if split == "train" and sub in VOICEMAIL_CARRYING:
                assert_rate(d.labels[friendly & d.groups[sub]], VOICEMAIL_NOISE, (split, sub))
            else:
                assert noise == 0, (split, sub, noise)
        assert_association_in_training_only(d, split, VOICEMAIL_CARRYING, 0.1, 0.04)
        ratio = 1.0 if split == "test" else VOICEMAIL_PREVALENCE  # 3:1 in the twin too
        for s, r in sizes_relative_to_the_rest(d, VOICEMAIL_CARRYING).items():
            assert abs(r - ratio) < 0.1 * ratio, (split, s, r)


@pytest.mark.parametrize("name", NEW)
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name):
    assert_bag_of_words_learns_train_not_twin(name, margin=0.05)
