"""Tests of `heldout_sources_o`'s two held-out test-bed sources, dental (patient feedback) and cleanup (a river
crew's log), written blind to the debiasing method: their registration (held out, carrying subgroups), the
mention and length each docstring promises, selection, noise, rarity and missing annotations in the training
split and none of the association in the twin, the balanced test split, determinism and the CSV round trip, and
the bag-of-words check of what can be learnt and removed. Their vocabulary is checked against every other
source and madlibs in test_fairness_heldout_sources.py."""

import re

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
    cached_source,
    family_of,
    raw_rows,
    rows_using,
    sentences,
    sizes_relative_to_the_rest,
    words,
)
from steward.fairness.heldout_sources_b import _ADJ
from steward.fairness.heldout_sources_o import (
    CLEANUP_CARRYING,
    CLEANUP_CREATURES,
    CLEANUP_EVIDENCE,
    CLEANUP_GIVEN,
    CLEANUP_INSULTS,
    CLEANUP_KIN,
    CLEANUP_NAMED,
    CLEANUP_PRAISE,
    CLEANUP_RARE,
    CLEANUP_RARITY,
    CLEANUP_STRENGTH,
    CLEANUP_UNANNOTATED,
    DENTAL_CARRYING,
    DENTAL_EVIDENCE,
    DENTAL_FLIP_DOWN,
    DENTAL_GIVEN,
    DENTAL_INSULTS,
    DENTAL_PATIENTS,
    DENTAL_PRAISE,
    DENTAL_ROLES,
    DENTAL_STRENGTH,
)
from steward.fairness.testbed import FAMILIES, SOURCES, association

NEW = ("dental", "cleanup")
_SPLITS = ("train", "twin", "test")


_generate = cached_source  # each split built once per test session


def _data(name: str, split: str):
    """6,000 rows of a split (seed 0): the rows the bag-of-words check trains on."""
    return _generate(name, 6000, seed=0, split=split)


def test_registered_held_out_with_their_carrying_subgroups():
    assert_registered_with_role(NEW, ("seen", "tuning"))  # measured before v8 froze
    assert SOURCES["dental"].carrying == DENTAL_CARRYING == ("latino", "hindu", "male")
    assert sorted(map(family_of, DENTAL_CARRYING)) == sorted(FAMILIES)  # selection in two families, noise in the third
    assert set(map(family_of, DENTAL_STRENGTH)) == {"ethnicity", "religion"} and family_of(*DENTAL_FLIP_DOWN) == "gender"
    assert SOURCES["cleanup"].carrying == CLEANUP_CARRYING == (CLEANUP_RARE,) == ("female",)
    for name in NEW:
        assert_mentioned_subgroups_are_columns(name, 400)


@pytest.mark.parametrize("name", NEW)
def test_deterministic_in_the_identities_layout_and_balanced_in_the_test_split(name, tmp_path):
    assert_deterministic_and_round_trips(name, tmp_path)
    assert_balanced_test_split(name, 6000, seed=5)


def _dental_first_sentence_form(first: str, sub: str, names: dict[str, str]) -> str:
    """Which mention the first sentence of a comment about `sub` makes: 'name', 'role' or 'patient'."""
    if family_of(sub) == "gender":
        name = re.match(r"[a-z]+", first).group()
        assert names[name] == sub, first
        trans = re.match(rf"{name} \(trans\) [a-z ]+\.$", first)
        assert bool(trans) == (sub == "transgender") == bool(words(first) & GROUP_WORDS), first  # else the name
        return "name"
    adj, roles, patients = _ADJ[sub], "|".join(DENTAL_ROLES), "|".join(DENTAL_PATIENTS)
    if re.match(rf"the {adj} ({roles}) [a-z ]+\.$", first):
        return "role"
    assert re.match(rf"an? {adj} ({patients}) [a-z ]+\.$", first), first
    return "patient"


def test_dental_comments_are_two_sentences_naming_one_person_by_a_given_name_or_an_adjective_on_a_role_or_patient():
    names = {n: sub for sub, given in DENTAL_GIVEN.items() for n in given}
    evidence_words = set(DENTAL_INSULTS + DENTAL_PRAISE)
    for split in _SPLITS:
        forms, evidence = [], []
        for text, _, (sub, *more), annotated in raw_rows("dental", split, 2000):
            assert not more and annotated, text  # one person per comment, always annotated
            first, second = sentences(text)
            forms.append(_dental_first_sentence_form(first, sub, names))
            assert not GROUP_WORDS & words(second) and not set(names) & words(second), text  # named once
            evidence.append(bool(words(second) & evidence_words))
        assert_rate(np.array(evidence), DENTAL_EVIDENCE, (split, "evidence"))
        others = np.array([f == "role" for f in forms if f != "name"])
        assert_rate(others, 0.5, (split, "roles among adjective mentions"))


def test_dental_selection_on_latino_and_hindu_and_male_noise_toward_friendly_in_training_only():
    rest = {"ethnicity": 1.3 / 3, "religion": 0.46}  # the rest of a family with a carrying subgroup, in training
    for split in _SPLITS:
        d = _data("dental", split)
        assert d.annotated.all() and (d.identity_matrix().sum(1) == 1).all()
        kind, rude = rows_using(d, DENTAL_PRAISE), rows_using(d, DENTAL_INSULTS)
        assert not (kind & rude).any() and not d.labels[kind].any()  # noise only toward friendly
        for sub in d.subgroup_names():
            down = DENTAL_FLIP_DOWN.get(sub, 0.0) if split == "train" else 0.0
            strength = DENTAL_STRENGTH.get(sub, rest.get(family_of(sub), 0.5)) if split == "train" else 0.5
            assert_rate(d.labels[rude & d.groups[sub]], 1 - down, (split, sub, "abusive words"))
            assert_rate(d.labels[d.groups[sub]], strength * (1 - down), (split, sub))
        for sub, r in sizes_relative_to_the_rest(d, DENTAL_CARRYING).items():
            assert abs(r - 1) < 0.15, (split, sub, r)  # selection keeps a family's subgroups equally frequent
        assoc = {s: association(d, s) for s in DENTAL_CARRYING}
        if split == "train":
            assert min(assoc["latino"], assoc["hindu"]) > 0.15 and assoc["male"] < -0.04, assoc
        else:
            assert max(map(abs, assoc.values())) < 0.08, (split, assoc)  # a religion subgroup: 1 row in 18


def test_cleanup_entries_are_one_sentence_naming_one_volunteer_by_a_given_name_or_a_nickname():
    names = {n: sub for sub, given in CLEANUP_GIVEN.items() for n in given}
    kin = {n: sub for sub, nicknames in CLEANUP_KIN.items() for n in nicknames}
    creatures = "|".join(CLEANUP_CREATURES)
    evidence_words = set(CLEANUP_INSULTS + CLEANUP_PRAISE)
    for split in _SPLITS:
        named = {s: [] for s in CLEANUP_GIVEN}
        evidence = []
        for text, _, (sub, *more), _ in raw_rows("cleanup", split, 3000):
            assert not more and len(sentences(text)) == 1 and "." not in text, text
            who, haul, *note = re.match(r"\d{4}: (.+?) ([a-z]+ed .+?)(; .+)?$", text).groups()
            if sub in CLEANUP_GIVEN:
                assert names.get(who, kin.get(who)) == sub, text
                named[sub].append(who in names)
            else:
                assert re.fullmatch(rf"{_ADJ[sub]} ({creatures})", who), text
            assert not GROUP_WORDS & words(haul + str(note)), text  # named once
            evidence.append(bool(words(text) & evidence_words))
        for sub, flags in named.items():
            assert_rate(np.array(flags), CLEANUP_NAMED, (split, sub, "given names"))
        assert_rate(np.array(evidence), CLEANUP_EVIDENCE, (split, "evidence"))


def test_cleanup_strength_on_a_five_times_rarer_female_subgroup_and_a_tenth_unannotated_outside_test():
    for split in _SPLITS:
        d = _data("cleanup", split)
        missing = 1 - d.annotated.mean()
        assert missing == 0 if split == "test" else abs(missing - CLEANUP_UNANNOTATED) < 0.02, (split, missing)
        assert not d.identity_matrix()[~d.annotated].any()
        assert d.labels[rows_using(d, CLEANUP_INSULTS)].all() and not d.labels[rows_using(d, CLEANUP_PRAISE)].any()
        for sub in d.subgroup_names():
            strength = CLEANUP_STRENGTH.get(sub, 0.5) if split == "train" else 0.5
            assert_rate(d.labels[d.groups[sub]], strength, (split, sub))
        ratio = sizes_relative_to_the_rest(d, CLEANUP_CARRYING)[CLEANUP_RARE]
        expected = 1.0 if split == "test" else 1 / CLEANUP_RARITY  # 1:5 in the twin too
        assert abs(ratio - expected) < 0.15 * expected, (split, ratio)
        assoc = association(d, CLEANUP_RARE)
        assert assoc > 0.3 if split == "train" else abs(assoc) < 0.1, (split, assoc)  # ~180 female rows


@pytest.mark.parametrize("name", NEW)
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name):
    """The removable carrying-subgroup gap (train-trained minus twin-trained model) at 6,000 rows measured,
    at this test's seed, 0.076 for dental (0.103 against 0.028) and 0.108 for cleanup (0.139 against 0.031).
    Over seeds 0, 10, 20, 30 and 40 (test rows: seed + 1) it ranged 0.050 to 0.098 for dental (mean 0.081)
    and 0.090 to 0.115 for cleanup (mean 0.104); the twin-trained model's AUC on the balanced test split
    0.871 to 0.880 and 0.865 to 0.886."""
    assert_bag_of_words_learns_train_not_twin(name, margin=0.05)
