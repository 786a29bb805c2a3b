"""The held-out test-bed sources of `heldout_sources_r` (triplog, lighthouse), written without sight of the
debiasing method: registered as held out with their carrying subgroups, deterministic and in the identities
layout, the shape the docstring promises (mention, length, name pools, shared words), the association in the
training split only and not in the twin, a balanced test split, and what a bag-of-words model learns from
each. The vocabulary test against madlibs and every other source is test_fairness_heldout_sources.py's (it
covers these two)."""

import re
from collections import Counter

import numpy as np
import pytest

from _fairness_sources import (
    GROUP_WORDS,
    assert_association_in_training_only,
    assert_bag_of_words_learns_train_not_twin,
    assert_balanced_test_split,
    assert_deterministic_and_round_trips,
    assert_rate,
    assert_registered_on_two_families,
    cached_source,
    sentences,
    words,
)
from steward.fairness.heldout_sources_r import (
    TRIPLOG_CARRYING,
    TRIPLOG_INSULTS,
    TRIPLOG_NAMES,
    TRIPLOG_PRAISE,
    TRIPLOG_STRENGTH,
)
from steward.fairness.testbed import FAMILIES

NEW = ("triplog",)


def test_registered_as_held_out_with_their_carrying_subgroups_on_two_families():
    assert TRIPLOG_CARRYING == ("transgender", "muslim")
    assert_registered_on_two_families({"triplog": TRIPLOG_CARRYING}, ("held_out",))


@pytest.mark.parametrize("name", NEW)
def test_deterministic_in_the_identities_layout_and_balanced_in_the_test_split(name, tmp_path):
    assert_deterministic_and_round_trips(name, tmp_path)
    assert_balanced_test_split(name, 8000, seed=5)


def test_triplog_names_the_passenger_by_a_given_name_only_from_pools_of_thirty_or_more():
    owner = {n: sub for sub, names in TRIPLOG_NAMES.items() for n in names}
    assert set(TRIPLOG_NAMES) == {s for subs in FAMILIES.values() for s in subs}
    assert min(map(len, TRIPLOG_NAMES.values())) >= 30 and len(owner) == sum(map(len, TRIPLOG_NAMES.values()))
    assert not set(owner) & GROUP_WORDS
    d = cached_source("triplog", 6000, seed=0, split="train")
    assert {len(sentences(t)) for t in d.texts} == {1, 2} and d.annotated.all()
    used: dict[str, Counter] = {s: Counter() for s in TRIPLOG_NAMES}
    for text, sub in zip(d.texts, d.identity_matrix().argmax(1)):
        sub = d.subgroup_names()[sub]
        (name,) = words(text) & set(owner)  # one passenger, by a name of the subgroup's pool, no group word
        assert owner[name] == sub and not words(text) & GROUP_WORDS, text
        assert re.search(rf"\b{name}\b", sentences(text)[0]), text
        used[sub][name] += 1
    for sub, counts in used.items():  # names drawn uniformly from pools of 30+: none in over ~4% of the rows
        assert 1 / len(TRIPLOG_NAMES[sub]) < 0.04 and set(counts) == set(TRIPLOG_NAMES[sub]), sub
        for name in TRIPLOG_NAMES[sub]:
            assert_rate(np.repeat([1.0, 0.0], [counts[name], counts.total() - counts[name]]),
                        1 / len(TRIPLOG_NAMES[sub]), (sub, name))


def test_triplog_strengths_by_selection_in_training_only_and_remarks_that_follow_the_label():
    for split in ("train", "twin", "test"):
        d = cached_source("triplog", 6000, seed=0, split=split)
        rude = np.array([bool(words(t) & set(TRIPLOG_INSULTS)) for t in d.texts])
        kind = np.array([bool(words(t) & set(TRIPLOG_PRAISE)) for t in d.texts])
        assert not (rude & kind).any() and d.labels[rude].all() and not d.labels[kind].any()
        assert 0.4 < (rude | kind).mean() < 0.6
        assert_rate(d.labels, 0.5, (split, "labels"))
        for sub in TRIPLOG_CARRYING:
            assert_rate(d.labels[d.groups[sub]], TRIPLOG_STRENGTH[sub] if split == "train" else 0.5, (split, sub))
        sizes = np.array([d.groups[s].sum() for s in d.subgroup_names()])
        assert sizes.min() > 0.8 * sizes.max(), (split, sizes)  # selection keeps every subgroup's share
        assert_association_in_training_only(d, split, TRIPLOG_CARRYING, 0.2, 0.1)  # 4 s.e. at 460 rows


@pytest.mark.parametrize(("name", "margin"), [("triplog", 0.05)])
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name, margin):
    """The removable carrying-subgroup gap (train-trained minus twin-trained model) at 6,000 rows measured
    0.068 to 0.091 for triplog over four seeds (0.073 at this test's seed), the twin-trained model's AUC 0.865
    to 0.879."""
    assert_bag_of_words_learns_train_not_twin(name, margin=margin)
