"""The held-out test-bed sources of `heldout_sources_m` (campsite, foodbank), written without sight of the
debiasing method: registered as held out with their carrying subgroups, deterministic and in the identities
layout (unannotated rows as empty cells), the shape the docstring promises (mention, length, identities per
row, missing annotations, imbalance), the injected association in the training split only and not in the
twin, a balanced test split, and what a bag-of-words model learns from each. The vocabulary test against
madlibs and every other source is test_fairness_heldout_sources.py's (it covers these two)."""

import re
from functools import cache

import numpy as np
import pytest

from _fairness_sources import (
    GROUP_WORDS,
    assert_bag_of_words_learns_train_not_twin,
    assert_balanced_test_split,
    assert_deterministic_and_round_trips,
    assert_mentioned_subgroups_are_columns,
    assert_rate,
    assert_registered_with_role,
    family_of,
    raw_rows,
    words,
)
from steward.fairness.heldout_sources_b import _ADJ
from steward.fairness.heldout_sources_m import (
    CAMPSITE_CAMPERS,
    CAMPSITE_CARRYING,
    CAMPSITE_EVIDENCE,
    CAMPSITE_FLIP_DOWN,
    CAMPSITE_FLIP_UP,
    CAMPSITE_FREQUENCY,
    CAMPSITE_FREQUENT,
    CAMPSITE_INSULTS,
    CAMPSITE_PRAISE,
    CAMPSITE_UNANNOTATED,
)
from steward.fairness.testbed import FAMILIES, SOURCES, association, generate_source

NEW = ("campsite",)
_SPLITS = ("train", "twin", "test")


@cache
def _data(name: str, split: str):
    """8,000 rows of a split (seed 0), built once for the tests of this module."""
    return generate_source(name, 8000, seed=0, split=split)


def _marked(d, vocabulary: list[str]) -> np.ndarray:
    """Which rows of `d` use a word of `vocabulary`."""
    return np.array([bool(words(t) & set(vocabulary)) for t in d.texts])


def test_registered_held_out_with_their_carrying_subgroups():
    assert_registered_with_role(NEW, ("held_out",))
    assert SOURCES["campsite"].carrying == CAMPSITE_CARRYING == ("female", "muslim")
    assert len({family_of(s) for s in CAMPSITE_CARRYING}) == 2  # two families
    assert family_of(CAMPSITE_FREQUENT) not in {family_of(s) for s in CAMPSITE_CARRYING}  # a third family
    for name in NEW:
        assert_mentioned_subgroups_are_columns(name, 400)


@pytest.mark.parametrize("name", NEW)
def test_deterministic_in_the_identities_layout_and_balanced_in_the_test_split(name, tmp_path):
    assert_deterministic_and_round_trips(name, tmp_path)
    assert_balanced_test_split(name, 6000, seed=5)


def test_campsite_entries_name_one_camper_as_a_gear_owner_or_an_arrival_in_one_or_two_clauses():
    campers = "|".join(CAMPSITE_CAMPERS)
    evidence_words = set(CAMPSITE_INSULTS + CAMPSITE_PRAISE)
    for split in _SPLITS:
        rows = raw_rows("campsite", split, 2000)
        forms, evidence, clauses = [], [], set()
        for text, _, (sub, *more), _ in rows:
            assert not more, text  # one camper per entry
            first, *rest = text.split("; ")
            clauses.add(1 + len(rest))
            adj = _ADJ[sub]
            owner = re.match(rf"the [a-z]+ by the [a-z]+ belonged to an? {adj} ({campers})$", first)
            arrival = re.match(rf"an? {adj} ({campers}) [a-z]+ (to )?glade \d+ (at )?[a-z]+$", first)
            assert bool(owner) != bool(arrival), text
            assert not GROUP_WORDS & words(" ".join(rest)), text  # named once, in the first clause
            forms.append(bool(owner))
            evidence.append(bool(words(" ".join(rest)) & evidence_words))
        assert clauses == {1, 2}, split
        assert_rate(np.array(forms), 0.5, (split, "gear owners"))
        assert_rate(np.array(evidence), CAMPSITE_EVIDENCE, (split, "evidence"))


def test_campsite_label_noise_both_ways_in_training_only_black_three_times_as_frequent_a_quarter_unannotated():
    for split in _SPLITS:
        d = _data("campsite", split)
        missing = 1 - d.annotated.mean()
        assert missing == 0 if split == "test" else abs(missing - CAMPSITE_UNANNOTATED) < 0.02, (split, missing)
        assert not d.identity_matrix()[~d.annotated].any()
        ratio = 1.0 if split == "test" else CAMPSITE_FREQUENCY  # 3:1 in the twin too
        others = np.mean([d.groups[s].sum() for s in FAMILIES["ethnicity"] if s != CAMPSITE_FREQUENT])
        assert abs(d.groups[CAMPSITE_FREQUENT].sum() / others - ratio) < 0.15 * ratio, split
        kind, rude = _marked(d, CAMPSITE_PRAISE), _marked(d, CAMPSITE_INSULTS)
        assert not (kind & rude).any()
        for sub in d.subgroup_names():
            up = CAMPSITE_FLIP_UP.get(sub, 0.0) if split == "train" else 0.0
            down = CAMPSITE_FLIP_DOWN.get(sub, 0.0) if split == "train" else 0.0
            assert_rate(d.labels[kind & d.groups[sub]], up, (split, sub, "friendly words"))
            assert_rate(d.labels[rude & d.groups[sub]], 1 - down, (split, sub, "abusive words"))
            assert_rate(d.labels[d.groups[sub]], 0.5 + up / 2 - down / 2, (split, sub))
        assert_rate(d.labels[d.groups[CAMPSITE_FREQUENT]], 0.5, (split, "frequent, no association"))
        assoc = {s: association(d, s) for s in CAMPSITE_CARRYING}
        if split == "train":
            assert assoc["female"] > 0.06 and assoc["muslim"] < -0.04, assoc
        else:
            assert max(map(abs, assoc.values())) < 0.05, (split, assoc)


@pytest.mark.parametrize("name", NEW)
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name):
    """At 3,000 training rows (to keep this file fast) the removable carrying-subgroup gap (train-trained
    minus twin-trained model) measured 0.088 for campsite at this test's seed (0.104 at 6,000 rows)."""
    assert_bag_of_words_learns_train_not_twin(name, margin=0.05, rows=3000)
