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
    LIGHTHOUSE_CARRYING,
    LIGHTHOUSE_INSULTS,
    LIGHTHOUSE_NOISE,
    LIGHTHOUSE_PRAISE,
    LIGHTHOUSE_SLOT_X,
    LIGHTHOUSE_SLOT_Y,
    LIGHTHOUSE_STRENGTH,
    LIGHTHOUSE_UNANNOTATED,
    SUBGROUPS,
    TRIPLOG_CARRYING,
    TRIPLOG_INSULTS,
    TRIPLOG_NAMES,
    TRIPLOG_PRAISE,
    TRIPLOG_STRENGTH,
)
from steward.fairness.testbed import FAMILIES

NEW = ("triplog", "lighthouse")


def _split(name: str, split: str):
    """The rows the bag-of-words test reads too (6,000 of `train` and `twin`, 3,000 of `test`), built once."""
    return cached_source(name, 3000, seed=1, split=split) if split == "test" else cached_source(
        name, 6000, seed=0, split=split)


def test_registered_as_held_out_with_their_carrying_subgroups_on_two_families():
    assert TRIPLOG_CARRYING == ("transgender", "muslim") and LIGHTHOUSE_CARRYING == ("female", "asian")
    assert_registered_on_two_families({"triplog": TRIPLOG_CARRYING, "lighthouse": LIGHTHOUSE_CARRYING},
                                      ("held_out",))


@pytest.mark.parametrize("name", NEW)
def test_deterministic_in_the_identities_layout_and_balanced_in_the_test_split(name, tmp_path):
    assert_deterministic_and_round_trips(name, tmp_path)
    assert_balanced_test_split(name, 6500, seed=5)


def test_triplog_names_the_passenger_by_a_given_name_only_from_pools_of_thirty_or_more():
    owner = {n: sub for sub, names in TRIPLOG_NAMES.items() for n in names}
    assert set(TRIPLOG_NAMES) == {s for subs in FAMILIES.values() for s in subs}
    assert min(map(len, TRIPLOG_NAMES.values())) >= 30 and len(owner) == sum(map(len, TRIPLOG_NAMES.values()))
    assert not set(owner) & GROUP_WORDS
    d = _split("triplog", "train")
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
        d = _split("triplog", split)
        rude = np.array([bool(words(t) & set(TRIPLOG_INSULTS)) for t in d.texts])
        kind = np.array([bool(words(t) & set(TRIPLOG_PRAISE)) for t in d.texts])
        assert not (rude & kind).any() and d.labels[rude].all() and not d.labels[kind].any()
        assert 0.4 < (rude | kind).mean() < 0.6
        assert_rate(d.labels, 0.5, (split, "labels"))
        for sub in TRIPLOG_CARRYING:
            assert_rate(d.labels[d.groups[sub]], TRIPLOG_STRENGTH[sub] if split == "train" else 0.5, (split, sub))
        sizes = np.array([d.groups[s].sum() for s in d.subgroup_names()])
        assert sizes.min() > 0.8 * sizes.max(), (split, sizes)  # selection keeps every subgroup's share
        assert_association_in_training_only(d, split, TRIPLOG_CARRYING, 0.2, 0.1)  # 4 s.e. at 230 rows


def _phrase_words(phrases: list[str]) -> set[str]:
    """The content word of each slot phrase (its last word)."""
    return {p.split()[-1] for p in phrases}


def test_lighthouse_phrases_share_every_word_yet_the_pair_names_the_subgroup():
    x_words, y_words = _phrase_words(LIGHTHOUSE_SLOT_X), _phrase_words(LIGHTHOUSE_SLOT_Y)
    assert len(x_words) == len(y_words) == len(SUBGROUPS) and not (x_words | y_words) & GROUP_WORDS
    d = _split("lighthouse", "train")
    assert {len(sentences(t)) for t in d.texts} == {2, 3}
    pairs: dict[tuple[str, str], set[str]] = {}
    by_word: dict[str, Counter] = {w: Counter() for w in x_words | y_words}
    for text, sub in zip(np.array(d.texts)[d.annotated], d.identity_matrix()[d.annotated].argmax(1)):
        sub = d.subgroup_names()[sub]
        first, *rest = sentences(text)
        (x,), (y,) = words(first) & x_words, words(first) & y_words  # one phrase of each slot, first sentence
        assert not words(" ".join(rest)) & (x_words | y_words) and not words(text) & GROUP_WORDS, text
        pairs.setdefault((x, y), set()).add(sub)
        by_word[x][sub] += 1
        by_word[y][sub] += 1
    assert all(len(subs) == 1 for subs in pairs.values()) and len(pairs) == 4 * len(SUBGROUPS)
    for w, counts in by_word.items():  # each word in two subgroups' rows, neither above ~60% of them
        assert len(counts) == 2 and max(counts.values()) < 0.6 * counts.total(), (w, counts)


def test_lighthouse_asian_strength_and_female_label_noise_in_training_only_and_missing_annotations():
    for split in ("train", "twin", "test"):
        d = _split("lighthouse", split)
        rude = np.array([bool(words(t) & set(LIGHTHOUSE_INSULTS)) for t in d.texts])
        kind = np.array([bool(words(t) & set(LIGHTHOUSE_PRAISE)) for t in d.texts])
        assert not (rude & kind).any() and d.labels[rude].all() and 0.4 < (rude | kind).mean() < 0.6
        noise = LIGHTHOUSE_NOISE["female"] if split == "train" else 0.0
        assert_rate(d.labels[kind & d.groups["female"]], noise, (split, "female friendly"))
        assert_rate(d.labels[kind & ~d.groups["female"]], 0.0, (split, "other friendly"))
        assert_rate(d.labels[d.groups["female"]], 0.5 + noise / 2, (split, "female"))
        strength = LIGHTHOUSE_STRENGTH["asian"] if split == "train" else 0.5
        assert_rate(d.labels[d.groups["asian"]], strength, (split, "asian"))
        missing = 1 - d.annotated.mean()
        assert missing == 0 if split == "test" else abs(missing - LIGHTHOUSE_UNANNOTATED) < 0.03, (split, missing)
        assert not d.identity_matrix()[~d.annotated].any()
        assert_association_in_training_only(d, split, LIGHTHOUSE_CARRYING, 0.1, 0.1)  # 3 s.e. at 230 rows


@pytest.mark.parametrize(("name", "margin"), [("triplog", 0.05), ("lighthouse", 0.05)])
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name, margin):
    """The removable carrying-subgroup gap (train-trained minus twin-trained model) at 6,000 rows measured
    0.068 to 0.091 for triplog and 0.057 to 0.079 for lighthouse over four seeds (0.073 and 0.065 at this test's
    seed), the twin-trained model's AUC 0.865 to 0.879 and 0.875 to 0.886."""
    assert_bag_of_words_learns_train_not_twin(name, margin=margin)
