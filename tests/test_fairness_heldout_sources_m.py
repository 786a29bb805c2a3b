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
    rows_using,
    sentences,
    sizes_relative_to_the_rest,
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
    FOODBANK_CARRYING,
    FOODBANK_EVIDENCE,
    FOODBANK_GIVEN,
    FOODBANK_INSULTS,
    FOODBANK_PRAISE,
    FOODBANK_ROLES,
    FOODBANK_STRENGTH,
)
from steward.fairness.testbed import FAMILIES, SOURCES, association, generate_source

NEW = ("campsite", "foodbank")
_SPLITS = ("train", "twin", "test")


@cache
def _data(name: str, split: str):
    """8,000 rows of a split (seed 0), built once for the tests of this module."""
    return generate_source(name, 8000, seed=0, split=split)


def test_registered_held_out_with_their_carrying_subgroups():
    assert_registered_with_role(NEW, ("seen", "tuning"))  # measured before v8 froze
    assert SOURCES["campsite"].carrying == CAMPSITE_CARRYING == ("female", "muslim")
    assert len({family_of(s) for s in CAMPSITE_CARRYING}) == 2  # two families
    assert family_of(CAMPSITE_FREQUENT) not in {family_of(s) for s in CAMPSITE_CARRYING}  # a third family
    assert SOURCES["foodbank"].carrying == FOODBANK_CARRYING == ("male", "black", "atheist")
    assert sorted(map(family_of, FOODBANK_CARRYING)) == sorted(FAMILIES)  # one in each family
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
        kind, rude = rows_using(d, CAMPSITE_PRAISE), rows_using(d, CAMPSITE_INSULTS)
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


def test_foodbank_reports_are_two_sentences_naming_one_volunteer_by_a_given_name_or_an_adjective_on_a_role():
    names = {n: sub for sub, given in FOODBANK_GIVEN.items() for n in given}
    roles = "|".join(FOODBANK_ROLES)
    evidence_words = set(FOODBANK_INSULTS + FOODBANK_PRAISE)
    for split in _SPLITS:
        rows = raw_rows("foodbank", split, 2000)
        evidence = []
        for text, _, (sub, *more), annotated in rows:
            assert not more and annotated, text  # one volunteer per report, always annotated
            first, second = sentences(text)
            if family_of(sub) == "gender":
                name = re.match(r"[a-z]+", first).group()
                assert names[name] == sub, text
                trans = re.match(rf"{name}, a trans ({roles}), [a-z ]+\.$", first)
                assert bool(trans) == (sub == "transgender"), text
                assert bool(words(first) & GROUP_WORDS) == (sub == "transgender"), text  # else the name alone
            else:
                assert re.match(rf"the {_ADJ[sub]} ({roles}) [a-z ]+\.$", first), text
            assert not GROUP_WORDS & words(second) and not set(names) & words(second), text
            evidence.append(bool(words(second) & evidence_words))
        assert_rate(np.array(evidence), FOODBANK_EVIDENCE, (split, "evidence"))


def test_foodbank_one_association_by_selection_in_each_family_in_training_only_and_equal_shares():
    rest = {"gender": 0.35, "ethnicity": 0.4, "religion": 0.44}  # the rest of a carrying family, in training
    for split in _SPLITS:
        d = _data("foodbank", split)
        assert d.annotated.all() and (d.identity_matrix().sum(1) == 1).all()
        assert_rate(d.labels, 0.5, (split, "labels"))
        rude = rows_using(d, FOODBANK_INSULTS)
        assert d.labels[rude].all() and not d.labels[rows_using(d, FOODBANK_PRAISE)].any()  # clean labels
        for sub in d.subgroup_names():
            strength = FOODBANK_STRENGTH.get(sub, rest[family_of(sub)]) if split == "train" else 0.5
            assert_rate(d.labels[d.groups[sub]], strength, (split, sub))
        for sub, r in sizes_relative_to_the_rest(d, FOODBANK_CARRYING).items():
            assert abs(r - 1) < 0.15, (split, sub, r)  # selection keeps a family's subgroups equally frequent
        assoc = [association(d, s) for s in FOODBANK_CARRYING]
        assert min(assoc) > 0.25 if split == "train" else max(map(abs, assoc)) < 0.06, (split, assoc)


@pytest.mark.parametrize(("name", "rows"), [("campsite", 3000), ("foodbank", 6000)])
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name, rows):
    """The removable carrying-subgroup gap (train-trained minus twin-trained model) measured, at this test's
    seed, 0.088 for campsite at 3,000 training rows (0.104 at 6,000; checked at 3,000 to keep this file fast)
    and 0.058 for foodbank at 6,000 rows. Over seeds 0, 10, 20, 30, 40 and 50 (test rows: seed + 1) at 6,000
    rows it ranged 0.043 to 0.104 for campsite (mean 0.077) and 0.054 to 0.076 for foodbank (mean 0.064):
    the twin-trained model's gap is sampling noise of the small carrying subgroups (a religion subgroup is in
    1 row of 18), up to 0.05."""
    assert_bag_of_words_learns_train_not_twin(name, margin=0.05, rows=rows)
