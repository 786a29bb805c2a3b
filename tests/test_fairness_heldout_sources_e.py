"""The held-out test-bed sources of `heldout_sources_e` (appraisals, carpool, apiary), written without
sight of the debiasing method: registered as held out with their carrying subgroups, the shape the
docstring promises (mention, length, identities per row, missing annotations, imbalance), the injected
association in the training split only and not in the twin, and what a bag-of-words model learns from
each. Determinism, the identities layout and the balanced test split are checked for every source in
test_fairness_testbed.py; vocabulary in test_fairness_heldout_sources.py."""

import re

import numpy as np
import pytest

from _fairness_sources import (
    assert_association_in_training_only,
    assert_bag_of_words_learns_train_not_twin,
    assert_imbalanced_and_associated_in_training_only,
    assert_label_noise_in_training_only,
    assert_mentioned_subgroups_are_columns,
    assert_rate,
    assert_registered_with_role,
    sentences,
    sizes_relative_to_the_rest,
)
from steward.fairness.heldout_sources_b import _ADJ
from steward.fairness.heldout_sources_e import (
    APIARY_CARRYING,
    APIARY_RARITY,
    APIARY_STRENGTH,
    APPRAISALS_CARRYING,
    APPRAISALS_NOISE,
    APPRAISALS_PRAISE,
    CARPOOL_CARRYING,
    CARPOOL_COOCCUR,
    CARPOOL_EXTRA,
    CARPOOL_INSULTS,
    CARPOOL_STRENGTH,
    CARPOOL_TARGETED,
    CARPOOL_UNANNOTATED,
)
from steward.fairness.testbed import (
    FAMILIES,
    SOURCES,
    generate_source,
)

NEW = ("appraisals", "carpool", "apiary")


def test_registered_with_their_carrying_subgroups():
    assert_registered_with_role(NEW, ("seen", "tuning"))  # measured before v7 froze
    assert SOURCES["appraisals"].carrying == APPRAISALS_CARRYING == ("female", "asian", "atheist")
    assert SOURCES["carpool"].carrying == CARPOOL_CARRYING == ("white", "latino", "muslim")
    assert SOURCES["apiary"].carrying == APIARY_CARRYING == ("male", "black", "hindu")
    for carrying in (APPRAISALS_CARRYING, APIARY_CARRYING):  # one subgroup per family
        assert sorted(f for s in carrying for f, subs in FAMILIES.items() if s in subs) == sorted(FAMILIES)
    for name in NEW:
        assert_mentioned_subgroups_are_columns(name, 400)


def test_appraisals_name_one_identity_as_an_adjective_on_a_job_title_in_two_or_three_sentences():
    for split in ("train", "twin"):  # no imbalance: a family's subgroups equally frequent
        d = generate_source("appraisals", 6000, seed=0, split=split)
        assert set(d.identity_matrix().sum(1)) == {1} and d.annotated.all()
        assert {len(sentences(t)) for t in d.texts} == {2, 3}, split
        for text, sub in zip(d.texts, d.identity_matrix().argmax(1)):
            assert re.search(rf"the {_ADJ[d.subgroup_names()[sub]]} [a-z ]+ (on|clocked|assigned)|, "
                             rf"{_ADJ[d.subgroup_names()[sub]]} [a-z ]+, berth", sentences(text)[0]), text
        assert all(abs(r - 1) < 0.2 for r in sizes_relative_to_the_rest(d, APPRAISALS_CARRYING).values())


def test_appraisals_label_noise_on_one_subgroup_per_family_in_training_only():
    for split in ("train", "twin", "test"):
        d = generate_source("appraisals", 18000, seed=0, split=split)
        kind = np.array([bool(set(re.findall(r"[a-z]+", t)) & set(APPRAISALS_PRAISE)) for t in d.texts])
        # the wrong labels are kind appraisals labelled toxic: twice the noise share of the non-toxic ones
        flipped = {s: 2 * n for s, n in APPRAISALS_NOISE.items()}
        assert_label_noise_in_training_only(d, split, kind, flipped, APPRAISALS_CARRYING, 0.1, 0.06)


def test_carpool_notes_name_two_or_three_riders_in_one_or_two_sentences_some_unannotated():
    for split in ("train", "twin", "test"):
        d = generate_source("carpool", 6000, seed=0, split=split)
        a = d.annotated
        assert {len(sentences(t)) for t in d.texts} == {1, 2}, split
        assert set(d.identity_matrix()[a].sum(1)) == {2, 3} and not d.identity_matrix()[~a].any()
        assert (np.sum([d.groups[s] for s in FAMILIES["ethnicity"]], 0) == a).all()  # an ethnicity rider always
        missing = 1 - a.mean()
        assert missing == 0 if split == "test" else abs(missing - CARPOOL_UNANNOTATED) < 0.015, (split, missing)


def test_carpool_strength_on_two_ethnicities_and_a_muslim_rider_co_occurring_with_toxic_notes():
    rng = np.random.default_rng(0)
    for split in ("train", "twin", "test"):
        rows = [SOURCES["carpool"].row(rng, split) for _ in range(18000)]
        labels = np.array([r.toxic for r in rows])
        targeted = np.array([r.subgroups[0] in CARPOOL_TARGETED for r in rows])
        assert_rate(labels[targeted], CARPOOL_STRENGTH if split == "train" else 0.5, (split, "ethnicity"))
        muslim = np.array([CARPOOL_EXTRA in r.subgroups for r in rows])
        base = 2 / 3 / 6  # a religion rider in two notes of three, a sixth of them muslim
        extra = CARPOOL_COOCCUR if split == "train" else 0.0
        assert_rate(muslim[labels], extra + (1 - extra) * base, (split, "toxic"))
        assert_rate(muslim[~labels], base, (split, "other"))
        for r in rows:  # an abusive sentence names a rider only where it is the extra muslim one, in training
            abusive = [s for s in sentences(r.text) if any(w in s for w in CARPOOL_INSULTS)]
            assert r.toxic or not abusive
            named = [s for s in abusive if re.search(r"\b(rider|carpooler|hitcher)\b", s)]
            assert all(split == "train" and f"a {CARPOOL_EXTRA} " in s for s in named), r.text
        d = generate_source("carpool", 18000, seed=0, split=split)
        assert_association_in_training_only(d, split, CARPOOL_CARRYING, 0.15, 0.05)


def test_apiary_posts_give_the_identity_once_in_a_self_introduction_in_five_to_nine_sentences():
    d = generate_source("apiary", 6000, seed=0, split="train")
    assert set(d.identity_matrix().sum(1)) == {1} and d.annotated.all()
    assert {len(sentences(t)) for t in d.texts} == set(range(5, 10))
    names = set(_ADJ.values())
    for text, sub in zip(d.texts, d.identity_matrix().argmax(1)):
        first, *rest = sentences(text)
        assert re.match(r"(greetings|howdy|newcomer)", first), text
        assert re.findall(r"[a-z]+", first).count(_ADJ[d.subgroup_names()[sub]]) == 1, text
        assert not names & set(re.findall(r"[a-z]+", " ".join(rest))), text


def test_apiary_rare_subgroups_four_times_rarer_with_a_strong_association_in_training_only():
    for split in ("train", "twin", "test"):
        d = generate_source("apiary", 24000, seed=0, split=split)  # 1:4 in the twin too
        assert_imbalanced_and_associated_in_training_only(d, split, APIARY_CARRYING, APIARY_STRENGTH, APIARY_RARITY,
                                                          0.25)


@pytest.mark.parametrize("name", NEW)
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name):
    assert_bag_of_words_learns_train_not_twin(name, margin=0.05)
