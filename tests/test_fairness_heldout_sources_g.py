"""The held-out test-bed sources of `heldout_sources_g` (bouldering, couriers, tracker), written without
sight of the debiasing method: registered as held out with their carrying subgroups, the shape the
docstring promises (mention, length, identities per row, missing annotations, imbalance), the injected
association in the training split only and not in the twin, and what a bag-of-words model learns from
each. Determinism, the identities layout and the balanced test split are checked for every source in
test_fairness_testbed.py; vocabulary in test_fairness_heldout_sources.py."""

import re

import numpy as np
import pytest

from _fairness_sources import (
    GROUP_WORDS,
    assert_bag_of_words_learns_train_not_twin,
    assert_label_noise_in_training_only,
    assert_mentioned_subgroups_are_columns,
    assert_one_subgroup_named_in_the_first_sentence,
    assert_rate,
    assert_registered_with_role,
    family_of,
    raw_rows,
    sentences,
    words,
)
from steward.fairness.heldout_sources_b import _ADJ
from steward.fairness.heldout_sources_g import (
    BOULDERING_CARRYING,
    BOULDERING_FREQUENCY,
    BOULDERING_FREQUENT,
    BOULDERING_MEMBERS,
    BOULDERING_NOISE,
    BOULDERING_PRAISE,
    COURIERS_CARRYING,
    COURIERS_GIVEN,
    COURIERS_HONORIFIC,
    COURIERS_INSULTS,
    COURIERS_NAMED,
    COURIERS_STRENGTH,
    COURIERS_UNANNOTATED,
    TRACKER_CARRYING,
    TRACKER_INSULTS,
    TRACKER_PRAISE,
    TRACKER_STRENGTH,
    TRACKER_TARGETED,
)
from steward.fairness.testbed import FAMILIES, SOURCES, association, generate_source

NEW = ("bouldering", "couriers", "tracker")

def test_registered_with_their_carrying_subgroups():
    assert_registered_with_role(NEW, ("seen", "tuning"))  # measured before v7 froze
    assert SOURCES["bouldering"].carrying == BOULDERING_CARRYING == ("transgender", "black")
    assert SOURCES["couriers"].carrying == COURIERS_CARRYING == ("male", "buddhist")
    assert SOURCES["tracker"].carrying == TRACKER_CARRYING == ("asian", "christian")
    for carrying in (BOULDERING_CARRYING, COURIERS_CARRYING, TRACKER_CARRYING):  # two families each
        assert len({family_of(s) for s in carrying}) == 2, carrying
    for name in NEW:
        assert_mentioned_subgroups_are_columns(name, 400)


def test_bouldering_posts_name_one_member_by_apposition_or_possessive_in_two_to_four_sentences():
    members = "|".join(BOULDERING_MEMBERS)

    def apposition(first: str, adj: str) -> bool | None:
        """True: an apposition; False: a possessive; None: neither."""
        if re.match(rf"[a-z ]+, a {adj} ({members}), [a-z ]+\.$", first):
            return True
        return False if re.match(rf"(the|a) {adj} ({members})'s [a-z ]+\.$", first) else None

    for split in ("train", "twin", "test"):
        d = generate_source("bouldering", 4000, seed=0, split=split)
        assert_one_subgroup_named_in_the_first_sentence(d, {2, 3, 4}, apposition)


def test_bouldering_christian_three_times_as_frequent_outside_test_and_label_noise_on_two_subgroups():
    for split in ("train", "twin", "test"):
        d = generate_source("bouldering", 18000, seed=0, split=split)
        others = np.mean([d.groups[s].sum() for s in FAMILIES["religion"] if s != BOULDERING_FREQUENT])
        ratio = 1.0 if split == "test" else BOULDERING_FREQUENCY  # 3:1 in the twin too
        assert abs(d.groups[BOULDERING_FREQUENT].sum() / others - ratio) < 0.15 * ratio, split
        kind = np.array([bool(words(t) & set(BOULDERING_PRAISE)) for t in d.texts])
        # the wrong labels are friendly posts labelled toxic
        assert_label_noise_in_training_only(d, split, kind, BOULDERING_NOISE, BOULDERING_CARRYING, 0.08, 0.05)


def _courier_names(sub: str) -> set[str]:
    return set(COURIERS_GIVEN.get(sub, [])) | ({COURIERS_HONORIFIC[sub]} if sub in COURIERS_HONORIFIC else set())


def test_couriers_ratings_name_the_courier_only_by_a_name_or_only_by_the_adjective_in_one_or_two_clauses():
    names = set().union(*(_courier_names(s) for s in _ADJ))
    for split in ("train", "twin", "test"):
        named = {s: [] for s in _ADJ}
        for text, _, subs, _ in raw_rows("couriers", split, 6000):
            (sub,) = subs
            assert text.count(",") <= 1 and "." not in text, text  # one or two clauses
            found = words(text)
            by_name, by_adjective = bool(found & names), bool(found & GROUP_WORDS)
            assert by_name != by_adjective, text  # never both, never neither
            assert found & (_courier_names(sub) if by_name else {_ADJ[sub]}), (sub, text)
            named[sub].append(by_name)
        for sub, flags in named.items():
            assert_rate(np.array(flags), COURIERS_NAMED if sub in COURIERS_HONORIFIC else 0.0, (split, sub))
        clauses = {text.count(",") + 1 for text, *_ in raw_rows("couriers", split, 200)}
        assert clauses == {1, 2}, split


def test_couriers_strength_on_male_and_buddhist_in_training_only_with_a_fifth_unannotated():
    for split in ("train", "twin", "test"):
        rows = raw_rows("couriers", split, 24000)
        labels = np.array([toxic for _, toxic, _, _ in rows])
        for sub in _ADJ:
            mask = np.array([subs == (sub,) for _, _, subs, _ in rows])
            strength = COURIERS_STRENGTH.get(sub, 0.5) if split == "train" else 0.5
            assert_rate(labels[mask], strength, (split, sub))
        d = generate_source("couriers", 24000, seed=0, split=split)
        missing = 1 - d.annotated.mean()
        assert missing == 0 if split == "test" else abs(missing - COURIERS_UNANNOTATED) < 0.02, (split, missing)
        assert set(d.identity_matrix()[d.annotated].sum(1)) == {1} and not d.identity_matrix()[~d.annotated].any()
        assoc = {s: association(d, s) for s in COURIERS_CARRYING}
        if split == "train":
            assert assoc["male"] > 0.3 and assoc["buddhist"] > 0.07, assoc
        else:
            assert max(map(abs, assoc.values())) < 0.05, (split, assoc)
    insult_rows = [toxic for text, toxic, *_ in raw_rows("couriers", "twin", 2000) if words(text) & set(COURIERS_INSULTS)]
    assert all(insult_rows) and insult_rows  # the words show the label where they show it


def test_tracker_comments_have_two_or_three_participants_of_different_families_in_three_to_six_sentences():
    for split in ("train", "twin", "test"):
        assert {len(sentences(text)) for text, *_ in raw_rows("tracker", split, 3000)} == {3, 4, 5, 6}, split
        for text, _, subs, _ in raw_rows("tracker", split, 3000):
            assert len(subs) in (2, 3) and len({family_of(s) for s in subs}) == len(subs), subs
            for sub in subs:  # each participant named in exactly one sentence
                assert sum(_ADJ[sub] in words(s) for s in sentences(text)) == 1, (sub, text)


def _remark(text: str) -> str | None:
    remarks = [s for s in sentences(text) if words(s) & set(TRACKER_INSULTS + TRACKER_PRAISE)]
    assert len(remarks) <= 1, text
    return remarks[0] if remarks else None


def test_tracker_targeted_participants_co_occur_with_abuse_in_the_same_sentence_in_training_only():
    for split in ("train", "twin", "test"):
        rows = raw_rows("tracker", split, 12000)
        labels = np.array([toxic for _, toxic, _, _ in rows])
        for sub in TRACKER_TARGETED:
            mask = np.array([sub in subs for _, _, subs, _ in rows])
            assert_rate(labels[mask], TRACKER_STRENGTH if split == "train" else 0.5, (split, sub))
        cited_targeted = {True: [], False: []}
        for text, toxic, subs, _ in rows:
            remark = _remark(text)
            if remark is None or not set(subs) & set(TRACKER_TARGETED):
                continue
            cited = [s for s in subs if _ADJ[s] in words(remark)]
            assert len(cited) == 1, text  # the remark names one participant, a bystander
            assert bool(words(remark) & set(TRACKER_INSULTS)) == toxic, text
            cited_targeted[toxic].append(cited[0] in TRACKER_TARGETED)
        if split == "train":  # a toxic remark always names the targeted participant, a friendly one at random
            assert all(cited_targeted[True]) and 0.3 < np.mean(cited_targeted[False]) < 0.6, split
        else:
            assert abs(np.mean(cited_targeted[True]) - np.mean(cited_targeted[False])) < 0.05, split
        d = generate_source("tracker", 12000, seed=0, split=split)
        assoc = [association(d, s) for s in TRACKER_CARRYING]
        assert min(assoc) > 0.25 if split == "train" else max(map(abs, assoc)) < 0.05, (split, assoc)


@pytest.mark.parametrize(("name", "margin"), [("bouldering", 0.04), ("couriers", 0.05), ("tracker", 0.05)])
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name, margin):
    """bouldering's margin is smaller: label noise on at most 30% of friendly rows is a weak association
    (P(toxic | subgroup) = 0.65); its removable gap measured 0.046 to 0.076 over four seeds."""
    assert_bag_of_words_learns_train_not_twin(name, margin=margin)
