"""The held-out test-bed sources of `heldout_sources_l` (bikecoop, choir), written without sight of the
debiasing method: registered as held out with their carrying subgroups, deterministic and in the identities
layout (unannotated rows as empty cells), the shape the docstring promises (mention, length, identities per
row, missing annotations, imbalance), the injected association in the training split only and not in the
twin, a balanced test split, and what a bag-of-words model learns from each. The vocabulary test against
madlibs and every other source is test_fairness_heldout_sources.py's (it covers these two). Each split is
generated once per module (`_data`)."""

import re
from functools import cache

import numpy as np
import pytest

from _fairness_sources import (
    GROUP_WORDS,
    assert_association_in_training_only,
    assert_bag_of_words_learns_train_not_twin,
    assert_balanced_test_split,
    assert_deterministic_and_round_trips,
    assert_held_out_on_two_families,
    assert_rate,
    raw_rows,
    sentences,
    sizes_relative_to_the_rest,
    words,
)
from steward.fairness.heldout_sources_b import _ADJ
from steward.fairness.heldout_sources_l import (
    BIKECOOP_CARRYING,
    BIKECOOP_EVIDENCE,
    BIKECOOP_INSULTS,
    BIKECOOP_PRAISE,
    BIKECOOP_RARE,
    BIKECOOP_RARITY,
    BIKECOOP_ROLES,
    BIKECOOP_STRENGTH,
    BIKECOOP_UNANNOTATED,
)
from steward.fairness.testbed import SOURCES, association, generate_source

NEW = ("bikecoop",)


@cache
def _data(name: str, n: int, *, seed: int, split: str):
    """`testbed.generate_source`, each (source, size, seed, split) generated once per module."""
    return generate_source(name, n, seed=seed, split=split)


def _flags(texts, vocabulary) -> np.ndarray:
    return np.array([bool(words(t) & set(vocabulary)) for t in texts])


def test_registered_held_out_with_their_carrying_subgroups_on_two_families():
    assert BIKECOOP_CARRYING == ("jewish", "black") and SOURCES["bikecoop"].carrying == BIKECOOP_CARRYING
    assert_held_out_on_two_families({"bikecoop": BIKECOOP_CARRYING})


@pytest.mark.parametrize("name", NEW)
def test_deterministic_in_the_identities_layout_and_balanced_in_the_test_split(name, tmp_path):
    assert_deterministic_and_round_trips(name, tmp_path)
    assert_balanced_test_split(name, 6000, seed=5)


def test_bikecoop_work_orders_name_one_identity_by_adjective_on_a_role_or_possessive_in_one_or_two_sentences():
    roles = "|".join(BIKECOOP_ROLES)
    for split in ("train", "twin", "test"):
        rows = raw_rows("bikecoop", split, 2000)
        assert {len(sentences(text)) for text, *_ in rows} == {1, 2}, split
        forms = set()
        for text, _, subs, _ in rows:
            (sub,) = subs
            first, *rest = sentences(text)
            adjective = re.match(rf"docket \d+: (the|a) {_ADJ[sub]} ({roles}) [a-z]+ the [a-z]+( on a [a-z]+)?\.$", first)
            possessive = re.match(rf"docket \d+: the ([a-z]+ on the )?{_ADJ[sub]} ({roles})'s [a-z]+ [a-z]+\.$", first)
            assert bool(adjective) != bool(possessive), text
            forms.add(bool(adjective))
            assert not GROUP_WORDS & words(" ".join(rest)), text  # named once, in the first sentence
        assert forms == {True, False}, split


def test_bikecoop_association_on_jewish_and_black_rare_jewish_and_missing_annotations_outside_test():
    for split in ("train", "twin", "test"):
        d = _data("bikecoop", 6000, seed=0, split=split)
        rude, kind = _flags(d.texts, BIKECOOP_INSULTS), _flags(d.texts, BIKECOOP_PRAISE)
        assert d.labels[rude].all() and not d.labels[kind].any() and not (rude & kind).any()
        assert_rate(rude | kind, BIKECOOP_EVIDENCE, (split, "evidence"))
        for sub in d.subgroup_names():
            strength = BIKECOOP_STRENGTH.get(sub, 0.5) if split == "train" else 0.5
            assert_rate(d.labels[d.groups[sub]], strength, (split, sub))
        missing = 1 - d.annotated.mean()
        assert missing == 0 if split == "test" else abs(missing - BIKECOOP_UNANNOTATED) < 0.02, (split, missing)
        assert not d.identity_matrix()[~d.annotated].any()
        ratio = sizes_relative_to_the_rest(d, (BIKECOOP_RARE,))[BIKECOOP_RARE]
        expected = 1.0 if split == "test" else 1 / BIKECOOP_RARITY  # 4x rarer in the twin too
        assert abs(ratio - expected) < 0.25 * expected, (split, ratio)
        if split == "train":
            assert association(d, "jewish") > 0.25 and association(d, "black") > 0.12
        else:  # the rare jewish rows are few: their toxic rate is checked above within its standard error
            assert_association_in_training_only(d, split, ("black",), 0.12, 0.05)


@pytest.mark.parametrize(("name", "margin"), [("bikecoop", 0.04)])
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name, margin):
    """The removable carrying-subgroup gap (train-trained minus twin-trained model) at 6,000 rows measured
    0.060 to 0.073 for bikecoop over four seeds (0.060 at this test's seed), twin AUC 0.89 to 0.90; the rare
    jewish subgroup is in 8% of the test rows and 2% of the training rows, so its gaps are the noisier."""
    assert_bag_of_words_learns_train_not_twin(name, margin=margin, generate=_data)
