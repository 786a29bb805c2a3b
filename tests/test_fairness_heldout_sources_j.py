"""The held-out test-bed sources of `heldout_sources_j` (ferry, suggestions), written without sight of the
debiasing method: registered as held out with their carrying subgroups, deterministic and in the identities
layout (unannotated rows as empty cells), the shape the docstring promises (mention, length, identities per
row, missing annotations, imbalance), the injected association in the training split only and not in the
twin, a balanced test split, and what a bag-of-words model learns from each. The vocabulary test against
madlibs and every other source is test_fairness_heldout_sources.py's (it covers these two)."""

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
    family_of,
    raw_rows,
    sentences,
    sizes_relative_to_the_rest,
    words,
)
from steward.fairness.heldout_sources_b import _ADJ
from steward.fairness.heldout_sources_j import (
    FERRY_CARRYING,
    FERRY_EVIDENCE,
    FERRY_FAMILY_SHARE,
    FERRY_GIVEN,
    FERRY_HONORIFIC,
    FERRY_INSULTS,
    FERRY_NAMED,
    FERRY_PASSENGERS,
    FERRY_PRAISE,
    FERRY_STRENGTH,
    SUGGESTIONS_CARRYING,
    SUGGESTIONS_EVIDENCE,
    SUGGESTIONS_INSULTS,
    SUGGESTIONS_PATRONS,
    SUGGESTIONS_PRAISE,
    SUGGESTIONS_RARE,
    SUGGESTIONS_RARITY,
    SUGGESTIONS_STRENGTH,
    SUGGESTIONS_UNANNOTATED,
)
from steward.fairness.testbed import FAMILIES, SOURCES, generate_source

NEW = ("ferry", "suggestions")
_SPLITS = ("train", "twin", "test")


def test_registered_held_out_with_their_carrying_subgroups():
    assert_registered_with_role(NEW, ("seen", "tuning"))  # measured before v8 froze
    assert SOURCES["ferry"].carrying == FERRY_CARRYING == ("christian", "hindu")
    assert SOURCES["suggestions"].carrying == SUGGESTIONS_CARRYING == ("asian", "female")
    assert {family_of(s) for s in FERRY_CARRYING} == {"religion"}  # two subgroups of one family
    assert len({family_of(s) for s in SUGGESTIONS_CARRYING}) == 2
    for name in NEW:
        assert_mentioned_subgroups_are_columns(name, 400)


@pytest.mark.parametrize("name", NEW)
def test_deterministic_in_the_identities_layout_and_balanced_in_the_test_split(name, tmp_path):
    assert_deterministic_and_round_trips(name, tmp_path)
    test = generate_source(name, 8000, seed=5, split="test")
    assert test.annotated.all()
    assert_rate(test.labels, 0.5, (name, "test labels"))
    for fam, subs in FAMILIES.items():  # a family's subgroups equally frequent, the label independent of them
        sizes = np.array([test.groups[s].sum() for s in subs])
        assert sizes.min() > 0.8 * sizes.max(), (name, fam, sizes)
        for sub in subs:
            assert_rate(test.labels[test.groups[sub]], 0.5, (name, "test", sub))


def _ferry_named(first: str, sub: str) -> bool:
    """Whether the first sentence gives the passenger by a name (True) or by the adjective (False); fails
    on a sentence that does neither or that names a subgroup other than `sub`."""
    given = {n: s for s, names in FERRY_GIVEN.items() for n in names}
    honorific = {h: s for s, h in FERRY_HONORIFIC.items()}
    lead = first.split()[0]
    if lead in given or lead in honorific:
        assert given.get(lead, honorific.get(lead)) == sub and not words(first) & GROUP_WORDS, first
        assert re.match(r"[a-z]+( [a-z]+)? [a-z]+ [a-z ]+ sailing\.$", first), first
        return True
    passengers = "|".join(FERRY_PASSENGERS)
    assert re.match(rf"(the|a) {_ADJ[sub]} ({passengers}) [a-z' ]+ sailing\.$", first), first
    return False


def test_ferry_comments_give_one_passenger_by_a_name_or_the_adjective_in_two_or_three_sentences():
    for split in _SPLITS:
        rows = raw_rows("ferry", split, 4000)
        assert {len(sentences(text)) for text, *_ in rows} == {2, 3}, split
        named, family = [], []
        for text, _, subs, annotated in rows:
            (sub,) = subs
            first, *rest = sentences(text)
            named.append(_ferry_named(first, sub))
            family.append(family_of(sub))
            assert annotated and not words(" ".join(rest)) & GROUP_WORDS, text  # named once, first sentence
        assert_rate(np.array(named), FERRY_NAMED, (split, "named"))
        for fam, share in FERRY_FAMILY_SHARE.items():
            assert_rate(np.array(family) == fam, share, (split, fam))
        nameless = [n for n, (_, _, subs, _) in zip(named, rows)
                    if subs[0] not in FERRY_GIVEN and subs[0] not in FERRY_HONORIFIC]
        assert nameless and not any(nameless), split  # transgender and ethnicity only by the adjective


def test_ferry_two_religions_at_the_same_strength_in_training_only_and_the_words_follow_the_label():
    for split in _SPLITS:
        d = generate_source("ferry", 8000, seed=0, split=split)
        rude = np.array([bool(words(t) & set(FERRY_INSULTS)) for t in d.texts])
        kind = np.array([bool(words(t) & set(FERRY_PRAISE)) for t in d.texts])
        assert d.labels[rude].all() and not d.labels[kind].any() and not (rude & kind).any()
        assert_rate(rude | kind, FERRY_EVIDENCE, (split, "evidence"))
        for sub in d.subgroup_names():
            strength = FERRY_STRENGTH.get(sub, 0.5) if split == "train" else 0.5
            assert_rate(d.labels[d.groups[sub]], strength, (split, sub))
        assert_association_in_training_only(d, split, FERRY_CARRYING, 0.15, 0.05)


def test_suggestion_slips_are_one_sentence_with_the_adjective_on_a_plural_patron():
    patrons = "|".join(SUGGESTIONS_PATRONS)
    for split in _SPLITS:
        for text, _, subs, _ in raw_rows("suggestions", split, 3000):
            (sub,) = subs
            assert len(sentences(text)) == 1 and text.endswith(".") and text.count(".") == 1, text
            assert re.search(rf"\bthe {_ADJ[sub]} ({patrons})\b", text), text
            assert len(words(text) & GROUP_WORDS) == 1, text


def test_suggestions_rare_asian_and_a_weaker_female_association_missing_annotations_outside_test():
    for split in _SPLITS:
        d = generate_source("suggestions", 9000, seed=0, split=split)
        for sub in d.subgroup_names():
            strength = SUGGESTIONS_STRENGTH.get(sub, 0.5) if split == "train" else 0.5
            assert_rate(d.labels[d.groups[sub]], strength, (split, sub))
        rude = np.array([bool(words(t) & set(SUGGESTIONS_INSULTS)) for t in d.texts])
        kind = np.array([bool(words(t) & set(SUGGESTIONS_PRAISE)) for t in d.texts])
        assert d.labels[rude].all() and not d.labels[kind].any()
        assert_rate(rude | kind, SUGGESTIONS_EVIDENCE, (split, "evidence"))
        missing = 1 - d.annotated.mean()
        assert missing == 0 if split == "test" else abs(missing - SUGGESTIONS_UNANNOTATED) < 0.015, (split, missing)
        assert not d.identity_matrix()[~d.annotated].any()
        assert set(d.identity_matrix()[d.annotated].sum(1)) == {1}
        ratio = sizes_relative_to_the_rest(d, (SUGGESTIONS_RARE,))[SUGGESTIONS_RARE]
        expected = 1.0 if split == "test" else 1 / SUGGESTIONS_RARITY  # 5:1 in the twin too
        assert abs(ratio - expected) < 0.15 * expected, (split, ratio)
        assert_association_in_training_only(d, split, SUGGESTIONS_CARRYING, 0.1, 0.05)


@pytest.mark.parametrize("name", NEW)
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name):
    """The removable carrying-subgroup gap (train-trained minus twin-trained model) at 6,000 rows measured
    0.094 for ferry and 0.065 for suggestions at this test's seed, 0.066 to 0.071 and 0.062 to 0.087 at three
    other seeds; suggestions' asian subgroup is in 2% of the training rows, so its gaps are the noisier."""
    assert_bag_of_words_learns_train_not_twin(name, margin=0.05)
