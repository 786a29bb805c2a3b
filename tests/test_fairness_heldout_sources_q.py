"""Tests of `heldout_sources_q`'s two held-out test-bed sources, tramdepot (a tram depot's driver incident notes)
and bakery (a village bakery's customer order notes), written blind to the debiasing method: their registration
(held out, carrying subgroups), the mention and length each docstring promises, the co-occurrence and the rare
subgroup of tramdepot and the weak association in every family plus label noise of bakery in the training split
and none of the association in the twin, the balanced test split, determinism and the CSV round trip, and the
bag-of-words check of what can be learnt and removed. Their vocabulary is checked against every other source and
madlibs in test_fairness_heldout_sources.py."""

import re

import numpy as np
import pytest

from _fairness_sources import (
    GROUP_WORDS,
    assert_association_in_training_only,
    assert_bag_of_words_learns_train_not_twin,
    assert_deterministic_and_round_trips,
    assert_mentioned_subgroups_are_columns,
    assert_rate,
    assert_registered_with_role,
    cached_source,
    family_of,
    raw_rows,
    rows_using,
    sentences,
    sizes_relative_to_the_rest,
    words,
)
from steward.fairness.heldout_sources_b import _ADJ
from steward.fairness.heldout_sources_q import (
    BAKERY_BASE,
    BAKERY_CARRYING,
    BAKERY_EVIDENCE,
    BAKERY_INSULTS,
    BAKERY_KIN,
    BAKERY_NOISE,
    BAKERY_PRAISE,
    BAKERY_STRENGTH,
    BAKERY_UNANNOTATED,
    TRAMDEPOT_CARRYING,
    TRAMDEPOT_COOCCUR,
    TRAMDEPOT_EVIDENCE,
    TRAMDEPOT_INSULTS,
    TRAMDEPOT_PRAISE,
    TRAMDEPOT_RARE,
    TRAMDEPOT_RARITY,
    TRAMDEPOT_ROLES,
    TRAMDEPOT_STRENGTH,
)
from steward.fairness.testbed import FAMILIES, SOURCES, association

NEW = ("tramdepot", "bakery")
_SPLITS = ("train", "twin", "test")


def _data(name: str, split: str):
    """6,000 rows of a split (seed 0), built once per test session: the rows the bag-of-words check trains on."""
    return cached_source(name, 6000, seed=0, split=split)


def test_registered_held_out_with_their_carrying_subgroups():
    assert_registered_with_role(NEW, ("held_out",))
    assert SOURCES["tramdepot"].carrying == TRAMDEPOT_CARRYING == ("female", "black")
    assert family_of(TRAMDEPOT_COOCCUR) == "gender" and family_of(TRAMDEPOT_RARE) == "ethnicity"
    assert SOURCES["bakery"].carrying == BAKERY_CARRYING == ("male", "latino", "buddhist", "asian")
    assert sorted(map(family_of, BAKERY_STRENGTH)) == sorted(FAMILIES)  # one subgroup of each family
    assert family_of(*BAKERY_NOISE) == "ethnicity" and not set(BAKERY_NOISE) & set(BAKERY_STRENGTH)
    for name in NEW:
        assert_mentioned_subgroups_are_columns(name, 400)


@pytest.mark.parametrize("name", NEW)
def test_deterministic_in_the_identities_layout_and_balanced_in_the_test_split(name, tmp_path):
    """The balance of the test split on the 6,000 rows the other tests read (each subgroup's share of its
    family's rows within 4 standard errors, rather than `assert_balanced_test_split`'s 20% of 12,000 fresh
    rows: one generation fewer)."""
    assert_deterministic_and_round_trips(name, tmp_path)
    test = _data(name, "test")
    assert test.annotated.all()
    assert_rate(test.labels, 0.5, (name, "test labels"))
    for subs in FAMILIES.values():
        in_family = np.any([test.groups[s] for s in subs], 0)
        for sub in subs:
            assert_rate(test.groups[sub][in_family], 1 / len(subs), (name, "test", sub, "share"))
            assert_rate(test.labels[test.groups[sub]], 0.5, (name, "test", sub))


def _tramdepot_form(first: str, sub: str) -> str:
    """Which mention a note's first sentence makes of `sub`: 'adjective' or 'possessive' on a depot role."""
    roles = "|".join(TRAMDEPOT_ROLES)
    got = re.match(rf"incident \d+: the {_ADJ[sub]} ({roles})('s [a-z]+)? [a-z]+ ", first)
    assert got, first
    return "possessive" if got.group(2) else "adjective"


def test_tramdepot_notes_name_one_member_of_staff_by_adjective_or_possessive_on_a_role_in_two_to_four_sentences():
    """The abusive words share the naming sentence only in training and only for the co-occurring subgroup's
    toxic notes; every other remark is a sentence of its own, with no group word."""
    evidence_words = set(TRAMDEPOT_INSULTS + TRAMDEPOT_PRAISE)
    for split in _SPLITS:
        forms, evidence, lengths = set(), [], set()
        for text, toxic, (sub, *more), annotated in raw_rows("tramdepot", split, 1500):
            assert not more and annotated, text
            first, *rest = sentences(text)
            lengths.add(len(rest) + 1)
            forms.add(_tramdepot_form(first, sub))
            assert not GROUP_WORDS & words(" ".join(rest)), text  # named once, in the first sentence
            joined, shown = bool(words(first) & evidence_words), bool(words(text) & evidence_words)
            assert joined == (split == "train" and toxic and sub == TRAMDEPOT_COOCCUR and shown), text
            assert joined == (";" in first), text
            evidence.append(shown)
        assert lengths == {2, 3, 4} and forms == {"adjective", "possessive"}, (split, lengths, forms)
        assert_rate(np.array(evidence), TRAMDEPOT_EVIDENCE, (split, "evidence"))


def test_tramdepot_strength_on_female_and_a_four_times_rarer_black_subgroup_in_training_only():
    for split in _SPLITS:
        d = _data("tramdepot", split)
        assert d.annotated.all() and (d.identity_matrix().sum(1) == 1).all()
        assert d.labels[rows_using(d, TRAMDEPOT_INSULTS)].all() and not d.labels[rows_using(d, TRAMDEPOT_PRAISE)].any()
        for sub in d.subgroup_names():
            strength = TRAMDEPOT_STRENGTH.get(sub, 0.5) if split == "train" else 0.5
            assert_rate(d.labels[d.groups[sub]], strength, (split, sub))
        ratio = sizes_relative_to_the_rest(d, (TRAMDEPOT_RARE,))[TRAMDEPOT_RARE]
        expected = 1.0 if split == "test" else 1 / TRAMDEPOT_RARITY  # 1:4 in the twin too
        assert abs(ratio - expected) < 0.2 * expected, (split, ratio)
        female, black = association(d, TRAMDEPOT_COOCCUR), association(d, TRAMDEPOT_RARE)
        if split == "train":  # ~150 black rows in 6,000: that association's standard error is near 0.04
            assert female > 0.3 and black > 0.03, (female, black)
        else:
            assert abs(female) < 0.05 and abs(black) < 0.12, (split, female, black)


def test_bakery_notes_name_one_relative_by_a_kinship_or_possessive_phrase_in_one_or_two_sentences():
    kin = "|".join(BAKERY_KIN)
    evidence_words = set(BAKERY_INSULTS + BAKERY_PRAISE)
    for split in _SPLITS:
        forms, evidence, lengths = set(), [], set()
        for text, _, (sub, *more), _ in raw_rows("bakery", split, 1500):
            assert not more, text
            first, *rest = sentences(text)
            lengths.add(len(rest) + 1)
            got = re.search(rf"my {_ADJ[sub]} ({kin})('s)?", first)
            assert got, text
            forms.add("possessive" if got.group(2) else "kinship")
            assert not GROUP_WORDS & words(" ".join(rest)) and not evidence_words & words(first), text
            evidence.append(bool(words(text) & evidence_words))
        assert lengths == {1, 2} and forms == {"kinship", "possessive"}, (split, lengths, forms)
        assert_rate(np.array(evidence), BAKERY_EVIDENCE, (split, "evidence"))


def test_bakery_weak_association_in_every_family_and_asian_label_noise_in_training_only_a_third_unannotated():
    for split in _SPLITS:
        d = _data("bakery", split)
        missing = 1 - d.annotated.mean()
        assert missing == 0 if split == "test" else abs(missing - BAKERY_UNANNOTATED) < 0.03, (split, missing)
        assert not d.identity_matrix()[~d.annotated].any()
        kind, rude = rows_using(d, BAKERY_PRAISE), rows_using(d, BAKERY_INSULTS)
        assert d.labels[rude].all() and not (kind & rude).any()  # noise only toward toxic
        base = 0.5 if split == "test" else BAKERY_BASE
        for sub in d.subgroup_names():
            flip = BAKERY_NOISE.get(sub, 0.0) if split == "train" else 0.0
            shown = BAKERY_STRENGTH.get(sub, base) if split == "train" else base
            assert_rate(d.labels[kind & d.groups[sub]], flip, (split, sub, "friendly words"))
            assert_rate(d.labels[d.groups[sub]], shown + (1 - shown) * flip, (split, sub))
        assert_association_in_training_only(d, split, BAKERY_CARRYING, 0.05, 0.06)


@pytest.mark.parametrize(("name", "margin"), [("tramdepot", 0.05), ("bakery", 0.04)])
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name, margin):
    """The removable carrying-subgroup gap (train-trained minus twin-trained model) at 6,000 rows measured, at
    this test's seed, 0.093 for tramdepot (0.103 against 0.009) and 0.074 for bakery (0.085 against 0.011).
    Over seeds 0, 10, 20, 30, 40 and 50 (test rows: seed + 1) it ranged 0.028 to 0.093 for tramdepot (mean
    0.065) and 0.045 to 0.074 for bakery (mean 0.060); the twin-trained model's AUC on the balanced test split
    0.868 to 0.880 and 0.871 to 0.884."""
    assert_bag_of_words_learns_train_not_twin(name, margin=margin)
