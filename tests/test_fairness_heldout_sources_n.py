"""The held-out test-bed sources of `heldout_sources_n` (skischool, phonein), written without sight of the
debiasing method: registered as held out with their carrying subgroups, deterministic and in the identities
layout (unannotated rows as empty cells), the shape the docstring promises (mention, length, identities per
row, missing annotations, imbalance), both mechanisms in the training split only and not in the twin, a
balanced test split, and what a bag-of-words model learns from each. The vocabulary test against madlibs and
every other source is test_fairness_heldout_sources.py's (it covers these two)."""

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
    cached_source,
    family_of,
    raw_rows,
    rows_using,
    sentences,
    sizes_relative_to_the_rest,
    words,
)
from steward.fairness.heldout_sources_b import _ADJ
from steward.fairness.heldout_sources_n import (
    PHONEIN_CALLERS,
    PHONEIN_CARRYING,
    PHONEIN_EVIDENCE,
    PHONEIN_INSULTS,
    PHONEIN_PRAISE,
    PHONEIN_STRENGTH,
    PHONEIN_UNANNOTATED,
    SKISCHOOL_CARRYING,
    SKISCHOOL_EVIDENCE,
    SKISCHOOL_INSULTS,
    SKISCHOOL_NOISE,
    SKISCHOOL_PRAISE,
    SKISCHOOL_RARE,
    SKISCHOOL_RARITY,
    SKISCHOOL_ROLES,
    SKISCHOOL_STRENGTH,
)
from steward.fairness.testbed import SOURCES, association

NEW = ("skischool", "phonein")
_SPLITS = ("train", "twin", "test")


@cache
def _raw(name: str, split: str):
    """1,500 rows of a split as generated (`raw_rows`: subgroups kept on unannotated rows), built once."""
    return raw_rows(name, split, 1500)


def test_registered_held_out_with_their_carrying_subgroups():
    assert_registered_with_role(NEW, ("seen", "tuning"))  # measured before v8 froze
    assert SOURCES["skischool"].carrying == SKISCHOOL_CARRYING == ("white", "female")
    assert sorted(map(family_of, SKISCHOOL_CARRYING)) == ["ethnicity", "gender"]  # noise and rarity: two families
    assert SOURCES["phonein"].carrying == PHONEIN_CARRYING == ("hindu",)
    assert family_of(*PHONEIN_CARRYING) == "religion"
    for name in NEW:
        assert_mentioned_subgroups_are_columns(name, 400)


@pytest.mark.parametrize("name", NEW)
def test_deterministic_in_the_identities_layout_and_balanced_in_the_test_split(name, tmp_path):
    assert_deterministic_and_round_trips(name, tmp_path)
    assert_balanced_test_split(name, 6000, seed=5)


def test_skischool_lines_name_one_instructor_by_an_adjective_on_a_role_in_one_or_two_clauses():
    roles = "|".join(SKISCHOOL_ROLES)
    for split in _SPLITS:
        clauses, evidence = [], []
        for text, _, (sub, *more), annotated in _raw("skischool", split):
            assert not more and annotated, text  # one instructor per line, every line annotated
            first, *rest = text.split("; ")
            assert re.match(rf"[a-z]+: the {_ADJ[sub]} ({roles}) [a-z ]+( \d+)?$", first), text
            assert not GROUP_WORDS & words(" ".join(rest)), text  # named once, in the first clause
            clauses.append(1 + len(rest))
            evidence.append(bool(words(" ".join(rest)) & set(SKISCHOOL_INSULTS + SKISCHOOL_PRAISE)))
        assert set(clauses) == {1, 2}, split
        assert evidence == [c == 2 for c in clauses], split  # the second clause is the remark that shows the label
        assert_rate(np.array(evidence), SKISCHOOL_EVIDENCE, (split, "evidence"))


def test_skischool_label_noise_on_white_and_a_rare_female_at_0_8_clean_in_training_only():
    for split in _SPLITS:
        d = cached_source("skischool", 6000, seed=0, split=split)
        assert d.annotated.all() and (d.identity_matrix().sum(1) == 1).all()
        kind, rude = rows_using(d, SKISCHOOL_PRAISE), rows_using(d, SKISCHOOL_INSULTS)
        assert not (kind & rude).any() and d.labels[rude].all()  # insults only in toxic lines, in every split
        for sub in d.subgroup_names():
            noise = SKISCHOOL_NOISE.get(sub, 0.0) if split == "train" else 0.0
            strength = SKISCHOOL_STRENGTH.get(sub, 0.5) if split == "train" else 0.5
            # friendly lines are labelled toxic only by the noise; the female lines' words follow their label
            assert_rate(d.labels[kind & d.groups[sub]], noise, (split, sub, "friendly"))
            assert_rate(d.labels[d.groups[sub]], strength + (1 - strength) * noise, (split, sub))
        ratio = sizes_relative_to_the_rest(d, (SKISCHOOL_RARE,))[SKISCHOOL_RARE]
        expected = 1.0 if split == "test" else 1 / SKISCHOOL_RARITY  # 3:1 in the twin too
        assert abs(ratio - expected) < 0.15 * expected, (split, ratio)
        assoc = {s: association(d, s) for s in SKISCHOOL_CARRYING}
        if split == "train":
            assert assoc["white"] > 0.07 and assoc["female"] > 0.2, assoc
        else:
            assert max(map(abs, assoc.values())) < 0.06, (split, assoc)


def _calls(text: str, subs: tuple[str, ...]) -> dict[str, str]:
    """Each caller's sentence of a note, by subgroup: the one sentence that names the subgroup."""
    named = {s: [x for x in sentences(text) if _ADJ[s] in words(x)] for s in subs}
    assert all(len(found) == 1 for found in named.values()), text
    return {s: found[0] for s, found in named.items()}


def test_phonein_notes_have_two_or_three_callers_of_different_families_one_sentence_each_in_three_or_four():
    callers = "|".join(PHONEIN_CALLERS)
    for split in _SPLITS:
        lengths, n_callers, evidence = set(), set(), []
        for text, _, subs, _ in _raw("phonein", split):
            assert len({family_of(s) for s in subs}) == len(subs), subs  # different families
            n_callers.add(len(subs))
            lengths.add(len(sentences(text)))
            calls = _calls(text, subs)
            for sub, call in calls.items():
                assert re.search(rf"an? {_ADJ[sub]} ({callers}) (phoned|rang|quizzed) ", call), call
            notes = [x for x in sentences(text) if x not in calls.values()]
            assert len(notes) == len(sentences(text)) - len(subs) and not words(" ".join(notes)) & GROUP_WORDS
            remark = [c for c in calls.values() if words(c) & set(PHONEIN_INSULTS + PHONEIN_PRAISE)]
            assert len(remark) <= 1, text  # at most one on-air remark, in a caller's sentence
            evidence.append(bool(remark))
        assert lengths == {3, 4} and n_callers == {2, 3}, (split, lengths, n_callers)
        assert_rate(np.array(evidence), PHONEIN_EVIDENCE, (split, "evidence"))


def test_phonein_hindu_caller_in_the_abusive_sentence_toxic_at_0_75_and_a_fifth_unannotated_outside_test():
    (carrier,) = PHONEIN_CARRYING
    for split in _SPLITS:
        d = cached_source("phonein", 6000, seed=0, split=split)
        missing = 1 - d.annotated.mean()
        assert missing == 0 if split == "test" else abs(missing - PHONEIN_UNANNOTATED) < 0.02, (split, missing)
        assert not d.identity_matrix()[~d.annotated].any()
        assert d.labels[rows_using(d, PHONEIN_INSULTS)].all() and not d.labels[rows_using(d, PHONEIN_PRAISE)].any()
        strength = PHONEIN_STRENGTH[carrier] if split == "train" else 0.5
        assert_rate(d.labels[d.groups[carrier]], strength, (split, carrier))
        assoc = association(d, carrier)
        assert assoc > 0.2 if split == "train" else abs(assoc) < 0.05, (split, assoc)
        aimed = []  # among notes with a hindu caller and an abusive remark: is the remark the hindu caller's?
        for text, _, subs, _ in _raw("phonein", split):
            calls = _calls(text, subs)
            abusive = [s for s, c in calls.items() if words(c) & set(PHONEIN_INSULTS)]
            if carrier in subs and abusive:
                aimed.append(abusive == [carrier])
        share = np.mean(aimed)
        assert share == 1.0 if split == "train" else 0.3 < share < 0.55, (split, share)  # else 1 in 2 or 3


@pytest.mark.parametrize(("name", "margin"), [("skischool", 0.04), ("phonein", 0.05)])
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name, margin):
    """The removable carrying-subgroup gap (train-trained minus twin-trained model) at 6,000 training rows
    measured 0.081 for skischool and 0.077 for phonein at this test's seed; over seeds 0, 10, 20, 30, 40 and 50
    (test rows: seed + 1) it ranged 0.043 to 0.081 for skischool (mean 0.060) and 0.068 to 0.107 for phonein
    (mean 0.090), the twin-trained model's AUC 0.866 to 0.891 and 0.888 to 0.907. skischool's female
    subgroup is 3x rarer in training (1 row in 21), so the twin-trained model's gap on it is the noisier
    (up to 0.11)."""
    assert_bag_of_words_learns_train_not_twin(name, margin=margin)
