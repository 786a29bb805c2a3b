"""Tests of `heldout_sources_s`'s two held-out test-bed sources, darts (a community darts league's match reports)
and snowrota (a neighbourhood snow-clearing rota's group chat), written blind to the debiasing method: their
registration (held out, carrying subgroups), the mention and length each docstring promises, darts' rare
subgroup with its strength and co-occurrence and snowrota's selection and label noise in the training split and
none of the association in the twin, the balanced test split, determinism and the CSV round trip, and the
bag-of-words check of what can be learnt and removed. Their vocabulary is checked against every other source and madlibs in
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
    assert_registered_on_two_families,
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
    SNOWROTA_CARRYING,
    SNOWROTA_EVIDENCE,
    SNOWROTA_FLIP_DOWN,
    SNOWROTA_INSULTS,
    SNOWROTA_KIN,
    SNOWROTA_PRAISE,
    SNOWROTA_STRENGTH,
    SNOWROTA_TAGS,
    SNOWROTA_UNANNOTATED,
)
from steward.fairness.testbed import FAMILIES, SOURCES, association

NEW = ("darts", "snowrota")
_SPLITS = ("train", "twin", "test")


def _data(name: str, split: str):
    """6,000 rows of a split (seed 0), built once per test session: the rows the bag-of-words check trains on."""
    return cached_source(name, 6000, seed=0, split=split)


def test_registered_held_out_with_their_carrying_subgroups():
    assert_registered_with_role(NEW, ("held_out",))
    assert SOURCES["darts"].carrying == DARTS_CARRYING == ("atheist",) and family_of(DARTS_RARE) == "religion"
    assert_mentioned_subgroups_are_columns("darts", 400)
    assert SOURCES["snowrota"].carrying == SNOWROTA_CARRYING == ("transgender", "latino")
    assert_registered_on_two_families({"snowrota": SNOWROTA_CARRYING}, ("held_out",))


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


def _snowrota_compounds(text: str) -> list[tuple[str, str, bool]]:
    """The (group word, ending, hashtag?) of every word of `text` made of a group word and a snowrota ending."""
    ends = "|".join(SNOWROTA_KIN + SNOWROTA_TAGS)
    groups = "|".join(sorted(GROUP_WORDS))
    return [(g, e, bool(h)) for h, g, e in re.findall(rf"(#?)\b({groups})({ends})\b", text)]


def test_snowrota_messages_name_a_household_inside_one_compound_or_hashtag_in_one_or_two_sentences():
    """No group word stands alone; each subgroup comes in many compounds, kin endings in plain words and
    household endings in hashtags."""
    evidence_words = set(SNOWROTA_INSULTS + SNOWROTA_PRAISE)
    for split in _SPLITS:
        evidence, lengths, forms, compounds = [], set(), set(), {}
        for text, _, (sub, *more), _ in raw_rows("snowrota", split, 1500):
            first, *rest = sentences(text)
            lengths.add(len(rest) + 1)
            assert not more and not GROUP_WORDS & words(text), text
            (got,) = _snowrota_compounds(first)
            assert got[0] == _ADJ[sub] and got[1] in (SNOWROTA_TAGS if got[2] else SNOWROTA_KIN), text
            assert not _snowrota_compounds(" ".join(rest)) and not evidence_words & words(first), text
            forms.add(got[2])
            compounds.setdefault(sub, set()).add(got[0] + got[1])
            evidence.append(bool(words(text) & evidence_words))
        assert lengths == {1, 2} and forms == {True, False}, (split, lengths, forms)
        assert min(map(len, compounds.values())) >= 10, (split, compounds)
        assert not {"malemum", "femaledad"} & set().union(*compounds.values())
        assert_rate(np.array(evidence), SNOWROTA_EVIDENCE, (split, "evidence"))


def test_snowrota_selection_on_transgender_and_latino_label_noise_in_training_only_half_unannotated():
    for split in _SPLITS:
        d = _data("snowrota", split)
        missing = 1 - d.annotated.mean()
        assert missing == 0 if split == "test" else abs(missing - SNOWROTA_UNANNOTATED) < 0.03, (split, missing)
        assert not d.identity_matrix()[~d.annotated].any() and (d.identity_matrix()[d.annotated].sum(1) == 1).all()
        kind, rude = rows_using(d, SNOWROTA_PRAISE), rows_using(d, SNOWROTA_INSULTS)
        assert not d.labels[kind].any() and not (kind & rude).any()  # noise only toward friendly
        for sub in d.subgroup_names():
            flip = SNOWROTA_FLIP_DOWN.get(sub, 0.0) if split == "train" else 0.0
            drawn = SNOWROTA_STRENGTH.get(sub, 0.5) if split == "train" else 0.5
            if split == "train" and family_of(sub) == "gender" and sub not in SNOWROTA_STRENGTH:
                drawn = 0.4  # the rest of the family, by selection
            assert_rate(d.labels[rude & d.groups[sub]], 1 - flip, (split, sub, "abusive words"))
            assert_rate(d.labels[d.groups[sub]], drawn * (1 - flip), (split, sub))
        gender = [d.groups[s].sum() for s in FAMILIES["gender"]]
        assert min(gender) > 0.8 * max(gender), (split, gender)  # selection keeps the family balanced
        assoc = [association(d, s) for s in SNOWROTA_CARRYING]
        assert (assoc[0] > 0.15 and assoc[1] < -0.1) if split == "train" else max(map(abs, assoc)) < 0.07, assoc


@pytest.mark.parametrize(("name", "margin"), [("darts", 0.05), ("snowrota", 0.05)])
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name, margin):
    """The removable carrying-subgroup gap (train-trained minus twin-trained model) at 6,000 rows measured, at
    this test's seed, 0.119 for darts (0.130 against 0.011). Over seeds 0, 10, 20, 30, 40 and 50 (test rows:
    seed + 1) it ranged 0.076 to 0.119 (mean 0.096); the twin-trained model's AUC on the balanced test split
    0.869 to 0.888. For snowrota 0.082 at this seed (0.095 against 0.013), 0.064 to 0.082 over those seeds (mean
    0.072), twin-trained AUC 0.866 to 0.877."""
    assert_bag_of_words_learns_train_not_twin(name, margin=margin)
