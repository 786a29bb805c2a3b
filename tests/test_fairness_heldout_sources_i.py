"""The held-out test-bed sources of `heldout_sources_i` (matinee, laundry), written without sight of the
debiasing method: registered as held out with their carrying subgroups, the shape the docstring promises
(mention, length, identities per row, missing annotations, imbalance), the injected association in the
training split only and not in the twin, and what a bag-of-words model learns from each. Determinism, the
identities layout and the balanced test split are checked for every source in test_fairness_testbed.py;
vocabulary in test_fairness_heldout_sources.py."""

import re

import numpy as np
import pytest

from _fairness_sources import (
    assert_association_in_training_only,
    assert_bag_of_words_learns_train_not_twin,
    assert_mentioned_subgroups_are_columns,
    assert_rate,
    assert_registered_with_role,
    family_of,
    raw_rows,
    sentences,
    sizes_relative_to_the_rest,
    words,
)
from steward.fairness.heldout_sources_b import _ADJ
from steward.fairness.heldout_sources_i import (
    LAUNDRY_CARRYING,
    LAUNDRY_EVIDENCE,
    LAUNDRY_FLIP_DOWN,
    LAUNDRY_FLIP_UP,
    LAUNDRY_FREQUENCY,
    LAUNDRY_FREQUENT,
    LAUNDRY_INSULTS,
    LAUNDRY_PEOPLE,
    LAUNDRY_PRAISE,
    LAUNDRY_UNANNOTATED,
    MATINEE_CARRYING,
    MATINEE_EVIDENCE,
    MATINEE_INSULTS,
    MATINEE_PRAISE,
    MATINEE_ROLES,
    MATINEE_STRENGTH,
)
from steward.fairness.testbed import FAMILIES, SOURCES, association, generate_source

NEW = ("matinee", "laundry")
_SPLITS = ("train", "twin", "test")


def test_registered_held_out_with_their_carrying_subgroups():
    assert_registered_with_role(NEW, ("seen", "tuning"))  # measured before v8 froze
    assert SOURCES["matinee"].carrying == MATINEE_CARRYING == ("asian", "female")
    assert SOURCES["laundry"].carrying == LAUNDRY_CARRYING == ("transgender", "asian")
    for carrying in (MATINEE_CARRYING, LAUNDRY_CARRYING):  # two families each
        assert len({family_of(s) for s in carrying}) == 2, carrying
    assert family_of(LAUNDRY_FREQUENT) not in {family_of(s) for s in LAUNDRY_CARRYING}  # a third family
    for name in NEW:
        assert_mentioned_subgroups_are_columns(name, 400)


def _remark(text: str) -> str | None:
    remarks = [s for s in sentences(text) if words(s) & set(MATINEE_INSULTS + MATINEE_PRAISE)]
    assert len(remarks) <= 1, text
    return remarks[0] if remarks else None


def test_matinee_cards_name_two_or_three_people_of_different_families_once_each_in_three_to_five_sentences():
    singular, plural = set(MATINEE_ROLES), set(MATINEE_ROLES.values())
    for split in _SPLITS:
        rows = raw_rows("matinee", split, 2000)
        assert {len(sentences(text)) for text, *_ in rows} == {3, 4, 5}, split
        forms, remarks = set(), []
        for text, _, subs, annotated in rows:
            assert annotated and len(subs) in (2, 3) and len({family_of(s) for s in subs}) == len(subs), subs
            for sub in subs:  # each person named in exactly one sentence, by the adjective on a role
                named = [s for s in sentences(text) if _ADJ[sub] in words(s)]
                assert len(named) == 1, (sub, text)
                (role,) = re.findall(rf"\b{_ADJ[sub]} ([a-z]+)", named[0])
                assert role in singular | plural, text
                forms.add(role in plural)
            remarks.append(_remark(text) is not None)
        assert forms == {True, False}, split
        assert_rate(np.array(remarks), MATINEE_EVIDENCE, (split, "remarks"))


def _matinee_toxic_rate(sub: str) -> float:
    """P(toxic | a card naming `sub`) in training: the strength for a targeted subgroup; for another of its
    family (targeted share t = 1/size, strength s) (1 - 2 s t) / (2 - 2 t), the toxic cards the targeted
    subgroup drew being missing from the rest; 1/2 in a family with no targeted subgroup."""
    subs = FAMILIES[family_of(sub)]
    targeted = [g for g in subs if g in MATINEE_STRENGTH]
    if sub in MATINEE_STRENGTH or not targeted:
        return MATINEE_STRENGTH.get(sub, 0.5)
    s, t = MATINEE_STRENGTH[targeted[0]], 1 / len(subs)
    return (1 - 2 * s * t) / (2 - 2 * t)


def test_matinee_targeted_people_co_occur_with_abuse_in_the_same_sentence_in_training_only():
    for split in _SPLITS:
        d = generate_source("matinee", 12000, seed=0, split=split)
        for sub in _ADJ:
            expected = _matinee_toxic_rate(sub) if split == "train" else 0.5
            assert_rate(d.labels[d.groups[sub]], expected, (split, sub))
        named_targeted = {True: [], False: []}
        for i, (text, toxic) in enumerate(zip(d.texts, d.labels)):
            remark = _remark(text)
            subs = [s for s in _ADJ if d.groups[s][i]]
            if remark is None or not set(subs) & set(MATINEE_CARRYING):
                continue
            named = [s for s in subs if _ADJ[s] in words(remark)]
            assert len(named) == 1, text  # the remark names one of the card's people
            assert bool(words(remark) & set(MATINEE_INSULTS)) == toxic, text
            named_targeted[bool(toxic)].append(named[0] in MATINEE_CARRYING)
        if split == "train":  # a toxic remark always names a targeted person, a friendly one any person
            assert all(named_targeted[True]) and 0.3 < np.mean(named_targeted[False]) < 0.6, split
        else:  # the same share whatever the label, within 4 standard errors
            toxic_side, friendly_side = np.array(named_targeted[True]), np.array(named_targeted[False])
            p = np.concatenate([toxic_side, friendly_side]).mean()
            tolerance = 4 * np.sqrt(p * (1 - p) * (1 / len(toxic_side) + 1 / len(friendly_side)))
            assert abs(toxic_side.mean() - friendly_side.mean()) < tolerance, split
        assert all(abs(r - 1) < 0.15 for r in sizes_relative_to_the_rest(d, MATINEE_CARRYING).values()), split
        assert_association_in_training_only(d, split, MATINEE_CARRYING, 0.1, 0.05)


def test_laundry_slips_are_one_clause_naming_one_person_by_the_adjective_with_the_evidence_in_the_clause():
    people = "|".join(LAUNDRY_PEOPLE)
    evidence_words = "|".join(LAUNDRY_INSULTS + LAUNDRY_PRAISE)
    for split in _SPLITS:
        rows = raw_rows("laundry", split, 4000)
        evidence = []
        for text, _, (sub,), _ in rows:
            assert not re.search(r"[.,;:]", text), text  # one clause
            assert re.match(rf"(the|that ({evidence_words})) {_ADJ[sub]} ({people}) [a-z0-9 ]+$", text), text
            assert not words(text) & set(_ADJ.values()) - {_ADJ[sub]}, text
            evidence.append(text.startswith("that "))
        assert_rate(np.array(evidence), LAUNDRY_EVIDENCE, (split, "evidence"))


def test_laundry_label_noise_both_ways_in_training_only_hindu_three_times_as_frequent_a_third_unannotated():
    for split in _SPLITS:
        d = generate_source("laundry", 24000, seed=0, split=split)
        missing = 1 - d.annotated.mean()
        if split == "test":
            assert missing == 0
        else:
            assert abs(missing - LAUNDRY_UNANNOTATED) < 0.02, (split, missing)
        ratio = 1.0 if split == "test" else LAUNDRY_FREQUENCY  # 3:1 in the twin too
        others = np.mean([d.groups[s].sum() for s in FAMILIES["religion"] if s != LAUNDRY_FREQUENT])
        assert abs(d.groups[LAUNDRY_FREQUENT].sum() / others - ratio) < 0.15 * ratio, split
        kind = np.array([bool(words(t) & set(LAUNDRY_PRAISE)) for t in d.texts])
        rude = np.array([bool(words(t) & set(LAUNDRY_INSULTS)) for t in d.texts])
        for sub in d.subgroup_names():
            up = LAUNDRY_FLIP_UP.get(sub, 0.0) if split == "train" else 0.0
            down = LAUNDRY_FLIP_DOWN.get(sub, 0.0) if split == "train" else 0.0
            assert_rate(d.labels[kind & d.groups[sub]], up, (split, sub, "friendly words"))
            assert_rate(d.labels[rude & d.groups[sub]], 1 - down, (split, sub, "abusive words"))
            assert_rate(d.labels[d.groups[sub]], 0.5 + up / 2 - down / 2, (split, sub))
        assoc = {s: association(d, s) for s in LAUNDRY_CARRYING}
        if split == "train":
            assert assoc["transgender"] > 0.06 and assoc["asian"] < -0.05, assoc
        else:
            assert max(map(abs, assoc.values())) < 0.05, (split, assoc)


@pytest.mark.parametrize("name", NEW)
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name):
    assert_bag_of_words_learns_train_not_twin(name, margin=0.05)
