"""The held-out test-bed sources of `heldout_sources_l` (bikecoop, choir), written without sight of the
debiasing method: registered as held out with their carrying subgroups, deterministic and in the identities
layout (unannotated rows as empty cells), the shape the docstring promises (mention, length, identities per
row, missing annotations, imbalance), the injected association in the training split only and not in the
twin, a balanced test split, and what a bag-of-words model learns from each. The vocabulary test against
madlibs and every other source is test_fairness_heldout_sources.py's (it covers these two). Each split is
generated once per module (`_data`)."""

import re

import numpy as np
import pytest

from _fairness_sources import (
    GROUP_WORDS,
    assert_association_in_training_only,
    assert_bag_of_words_learns_train_not_twin,
    assert_balanced_test_split,
    assert_deterministic_and_round_trips,
    assert_mentioned_subgroups_are_columns,
    assert_rate,
    assert_registered_on_two_families,
    assert_registered_with_role,
    cached_source,
    family_of,
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
    CHOIR_CARRYING,
    CHOIR_EVIDENCE,
    CHOIR_INSULTS,
    CHOIR_PARTS,
    CHOIR_PRAISE,
    CHOIR_STRENGTH,
)
from steward.fairness.testbed import SOURCES, association

NEW = ("bikecoop", "choir")


_data = cached_source  # each (source, size, seed, split) generated once per test session


def _split_whose_words_show_the_label(name: str, split: str, insults, praise, share: float):
    """The rows of `name`'s `split` that the bag-of-words check reuses (6,000 with seed 0; 3,000 test rows with
    seed 1), checked: `insults` only in toxic rows, `praise` only in friendly ones, never both, and one or the
    other in `share` of the rows."""
    d = _data(name, 3000, seed=1, split=split) if split == "test" else _data(name, 6000, seed=0, split=split)
    rude, kind = (np.array([bool(words(t) & set(vocabulary)) for t in d.texts]) for vocabulary in (insults, praise))
    assert d.labels[rude].all() and not d.labels[kind].any() and not (rude & kind).any()
    assert_rate(rude | kind, share, (name, split, "evidence"))
    return d


def test_registered_with_their_carrying_subgroups_on_two_families():
    assert BIKECOOP_CARRYING == ("jewish", "black") and SOURCES["bikecoop"].carrying == BIKECOOP_CARRYING
    assert_registered_on_two_families({"bikecoop": BIKECOOP_CARRYING},
                                      ("seen", "tuning"))  # measured before v8 froze
    assert CHOIR_CARRYING == ("male",) and SOURCES["choir"].carrying == CHOIR_CARRYING  # one gender subgroup
    assert_registered_with_role(["choir"], ("seen", "tuning"))  # measured before v8 froze
    assert_mentioned_subgroups_are_columns("choir", 400)


@pytest.mark.parametrize("name", NEW)
def test_deterministic_in_the_identities_layout_and_balanced_in_the_test_split(name, tmp_path):
    assert_deterministic_and_round_trips(name, tmp_path)
    assert_balanced_test_split(name, 4000, seed=5)


def test_bikecoop_work_orders_name_one_identity_by_adjective_on_a_role_or_possessive_in_one_or_two_sentences():
    roles = "|".join(BIKECOOP_ROLES)
    for split in ("train", "twin", "test"):
        rows = raw_rows("bikecoop", split, 1000)
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
        d = _split_whose_words_show_the_label("bikecoop", split, BIKECOOP_INSULTS, BIKECOOP_PRAISE, BIKECOOP_EVIDENCE)
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


def test_choir_minutes_list_two_or_three_singers_of_different_families_then_notes_in_three_or_four_sentences():
    parts = "|".join(CHOIR_PARTS)
    for split in ("train", "twin", "test"):
        counts = set()
        for text, _, subs, annotated in raw_rows("choir", split, 1000):
            first, *rest = sentences(text)
            assert annotated and len(rest) in (2, 3), text
            assert family_of(subs[0]) == "gender" and len({family_of(s) for s in subs}) == len(subs), subs
            people = re.findall(rf"the ([a-z]+) ({parts})\b", first)
            assert sorted(adj for adj, _ in people) == sorted(_ADJ[s] for s in subs), text
            assert len({part for _, part in people}) == len(people), text  # one voice part each
            counts.add(len(subs))
            for sentence in rest:  # a singer is named again only in the remark, which shows the label
                named = words(sentence) & GROUP_WORDS
                assert not named or (len(named) == 1 and words(sentence) & set(CHOIR_INSULTS + CHOIR_PRAISE)), text
        assert counts == {2, 3}, split


def test_choir_male_singer_in_the_abusive_sentence_and_toxic_at_0_7_in_training_only():
    for split in ("train", "twin", "test"):
        d = _split_whose_words_show_the_label("choir", split, CHOIR_INSULTS, CHOIR_PRAISE, CHOIR_EVIDENCE)
        assert_rate(d.groups["male"], 1 / 3, (split, "male share"))  # a third of the minutes in every split
        # training: male minutes toxic at 0.7, the other gender subgroups' at 1/2, so a minute's other singers
        # (ethnicity, religion) are in toxic ones at the mean rate 1/2 + (0.7 - 1/2) / 3; elsewhere all at 1/2
        spill = 0.5 + (CHOIR_STRENGTH["male"] - 0.5) / 3
        for sub in d.subgroup_names():
            expected = CHOIR_STRENGTH.get(sub, 0.5 if family_of(sub) == "gender" else spill)
            assert_rate(d.labels[d.groups[sub]], expected if split == "train" else 0.5, (split, sub))
        assert_association_in_training_only(d, split, CHOIR_CARRYING, 0.15, 0.05)
        abuse = [s for t, male in zip(d.texts, d.groups["male"]) if male for s in sentences(t)
                 if words(s) & set(CHOIR_INSULTS)]
        with_male = np.array(["male" in words(s) for s in abuse])
        # training: every abusive remark in a minute with a male singer names him; elsewhere one of 2-3 singers
        assert with_male.all() if split == "train" else 0.3 < with_male.mean() < 0.55, (split, with_male.mean())


@pytest.mark.parametrize(("name", "margin"), [("bikecoop", 0.04), ("choir", 0.04)])
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name, margin):
    """The removable carrying-subgroup gap (train-trained minus twin-trained model) at 6,000 rows measured
    0.060 to 0.073 for bikecoop over four seeds (0.060 at this test's seed), twin AUC 0.89 to 0.90; the rare
    jewish subgroup is in 8% of the test rows and 2% of the training rows, so its gaps are the noisier; 0.057
    to 0.078 for choir over four seeds (0.057 at this test's seed), twin AUC 0.91 to 0.93."""
    assert_bag_of_words_learns_train_not_twin(name, margin=margin)
