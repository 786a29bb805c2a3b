"""Tests of `heldout_sources_s`'s held-out test-bed sources, darts (a community darts league's match reports),
written blind to the debiasing method: registration (held out, carrying subgroups), the mention and length the
docstring promises, the rare subgroup, its strength and co-occurrence in the training split and none of the
association in the twin, the balanced test split, determinism and the CSV round trip, and the bag-of-words
check of what can be learnt and removed. Their vocabulary is checked against every other source and madlibs in
test_fairness_heldout_sources.py."""

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
from steward.fairness.heldout_sources_s import (
    DARTS_CARRYING,
    DARTS_EVIDENCE,
    DARTS_INSULTS,
    DARTS_PLAYERS,
    DARTS_PRAISE,
    DARTS_RARE,
    DARTS_RARITY,
    DARTS_ROLES,
    DARTS_STRENGTH,
)
from steward.fairness.testbed import FAMILIES, SOURCES

NEW = ("darts",)
_SPLITS = ("train", "twin", "test")


def _data(name: str, split: str):
    """6,000 rows of a split (seed 0), built once per test session: the rows the bag-of-words check trains on."""
    return cached_source(name, 6000, seed=0, split=split)


def test_registered_held_out_with_their_carrying_subgroups():
    assert_registered_with_role(NEW, ("held_out",))
    assert SOURCES["darts"].carrying == DARTS_CARRYING == ("atheist",) and family_of(DARTS_RARE) == "religion"
    for name in NEW:
        assert_mentioned_subgroups_are_columns(name, 400)


@pytest.mark.parametrize("name", NEW)
def test_deterministic_in_the_identities_layout_and_balanced_in_the_test_split(name, tmp_path):
    """The balance of the test split on the 6,000 rows the other tests read (each subgroup's share of its
    family's mentions within 4 standard errors)."""
    assert_deterministic_and_round_trips(name, tmp_path)
    test = _data(name, "test")
    assert test.annotated.all()
    assert_rate(test.labels, 0.5, (name, "test labels"))
    for subs in FAMILIES.values():
        mentions = np.repeat(np.arange(len(subs)), [test.groups[s].sum() for s in subs])  # a family's mentions
        for i, sub in enumerate(subs):
            assert_rate(mentions == i, 1 / len(subs), (name, "test", sub, "share"))
            assert_rate(test.labels[test.groups[sub]], 0.5, (name, "test", sub))


def _darts_lineup(first: str) -> list[str]:
    """The subgroup words of the players a report's first sentence names, in order ('the {adj} {role}')."""
    roles = "|".join(DARTS_ROLES)
    return re.findall(rf"the ([a-z]+) (?:{roles})\b", first)


def test_darts_reports_name_three_or_four_players_of_different_subgroups_in_the_lineup_in_three_to_five_sentences():
    """The line-up names every player once; a heckle or toast names one of them again, and in training a
    toxic report's heckle names its atheist player whenever it has one."""
    evidence_words = set(DARTS_INSULTS + DARTS_PRAISE)
    rare = _ADJ[DARTS_RARE]
    for split in _SPLITS:
        evidence, lengths, counts, families = [], set(), set(), set()
        for text, toxic, subs, annotated in raw_rows("darts", split, 1500):
            assert annotated and len(set(subs)) == len(subs), text
            first, *rest = sentences(text)
            lengths.add(len(rest) + 1)
            counts.add(len(subs))
            families.add(len({family_of(s) for s in subs}))
            assert _darts_lineup(first) == [_ADJ[s] for s in subs], text
            shown = [r for r in rest if words(r) & evidence_words]
            assert len(shown) <= 1 and not evidence_words & words(first), text
            assert all(not GROUP_WORDS & words(r) for r in rest if r not in shown), text
            if shown:
                named = GROUP_WORDS & words(shown[0])
                assert len(named) == 1 and named <= {_ADJ[s] for s in subs}, text
                if split == "train" and toxic and DARTS_RARE in subs:
                    assert named == {rare}, text
            evidence.append(bool(shown))
        assert lengths == {3, 4, 5} and counts == set(DARTS_PLAYERS) and families >= {2, 3}, (split, lengths)
        assert_rate(np.array(evidence), DARTS_EVIDENCE, (split, "evidence"))


def test_darts_five_times_rarer_atheist_toxic_at_095_in_training_only():
    for split in _SPLITS:
        d = _data("darts", split)
        assert d.annotated.all() and set(d.identity_matrix().sum(1)) == set(DARTS_PLAYERS)
        assert d.labels[rows_using(d, DARTS_INSULTS)].all() and not d.labels[rows_using(d, DARTS_PRAISE)].any()
        rare = d.groups[DARTS_RARE]
        assert_rate(d.labels[rare], DARTS_STRENGTH if split == "train" else 0.5, (split, DARTS_RARE))
        assert_rate(d.labels[~rare], 0.5, (split, "reports without an atheist player"))
        ratio = sizes_relative_to_the_rest(d, DARTS_CARRYING)[DARTS_RARE]
        expected = 1.0 if split == "test" else 1 / DARTS_RARITY  # 1:5 in the twin too
        assert abs(ratio - expected) < 0.2 * expected, (split, ratio)
        assert_association_in_training_only(d, split, DARTS_CARRYING, 0.35, 0.1)


@pytest.mark.parametrize(("name", "margin"), [("darts", 0.05)])
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name, margin):
    """The removable carrying-subgroup gap (train-trained minus twin-trained model) at 6,000 rows measured, at
    this test's seed, 0.119 for darts (0.130 against 0.011). Over seeds 0, 10, 20, 30, 40 and 50 (test rows:
    seed + 1) it ranged 0.076 to 0.119 (mean 0.096); the twin-trained model's AUC on the balanced test split
    0.869 to 0.888."""
    assert_bag_of_words_learns_train_not_twin(name, margin=margin)
