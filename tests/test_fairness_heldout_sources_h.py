"""The held-out test-bed sources of `heldout_sources_h` (allotments, tutors), written without sight of the
debiasing method: registered as held out with their carrying subgroups, deterministic and in the identities
layout (unannotated rows as empty cells), the shape the docstring promises (mention, length, identities per
row, missing annotations, imbalance), both mechanisms in the training split only and not in the twin, a
balanced test split, and what a bag-of-words model learns from each. The vocabulary test against madlibs and
every other source is test_fairness_heldout_sources.py's (it covers these two)."""

import re

import numpy as np
import pytest

from _fairness_sources import (
    GROUP_WORDS,
    assert_association_in_training_only,
    assert_bag_of_words_learns_train_not_twin,
    assert_balanced_test_split,
    assert_deterministic_and_round_trips,
    assert_one_subgroup_named_in_the_first_sentence,
    assert_rate,
    assert_registered_on_two_families,
    family_of,
    raw_rows,
    sizes_relative_to_the_rest,
    words,
)
from steward.fairness.heldout_sources_b import _ADJ
from steward.fairness.heldout_sources_h import (
    ALLOTMENTS_CARRYING,
    ALLOTMENTS_HOLDERS,
    ALLOTMENTS_INSULTS,
    ALLOTMENTS_NOISE,
    ALLOTMENTS_PRAISE,
    ALLOTMENTS_STRENGTH,
    TUTORS_CARRYING,
    TUTORS_DEGREE,
    TUTORS_GIVEN,
    TUTORS_INSULTS,
    TUTORS_NAMED,
    TUTORS_RARE,
    TUTORS_RARITY,
    TUTORS_STRENGTH,
    TUTORS_UNANNOTATED,
)
from steward.fairness.testbed import FAMILIES, association, generate_source

NEW = ("allotments", "tutors")

def test_registered_with_their_carrying_subgroups_on_two_families():
    assert ALLOTMENTS_CARRYING == ("jewish", "latino") and TUTORS_CARRYING == ("male", "white")
    assert_registered_on_two_families({"allotments": ALLOTMENTS_CARRYING, "tutors": TUTORS_CARRYING},
                                      ("seen", "tuning"))  # measured before v8 froze


@pytest.mark.parametrize("name", NEW)
def test_deterministic_in_the_identities_layout_and_balanced_in_the_test_split(name, tmp_path):
    assert_deterministic_and_round_trips(name, tmp_path)
    assert_balanced_test_split(name, 12000, seed=5)


def test_allotments_posts_name_one_plot_holder_by_adjective_or_possessive_in_two_or_three_sentences():
    holders = "|".join(ALLOTMENTS_HOLDERS)

    def adjective(first: str, adj: str) -> bool | None:
        """True: an adjective on the plot holder; False: a possessive phrase; None: neither, or both."""
        on_plot = re.match(rf"(the|a) {adj} ({holders}) (on|from) plot \d+ [a-z ]+\.$", first)
        possessive = (re.match(rf"(the|a) {adj} ({holders})'s [a-z]+ [a-z ]+( \d+)?\.$", first)
                      or re.match(rf"the [a-z]+ of the {adj} ({holders}) [a-z ]+\.$", first))
        return None if bool(on_plot) == bool(possessive) else bool(on_plot)

    for split in ("train", "twin", "test"):
        assert_one_subgroup_named_in_the_first_sentence(
            generate_source("allotments", 2000, seed=0, split=split), {2, 3}, adjective)


def test_allotments_label_noise_on_jewish_and_a_clean_latino_association_in_training_only():
    for split in ("train", "twin", "test"):
        d = generate_source("allotments", 9000, seed=0, split=split)
        kind = np.array([bool(words(t) & set(ALLOTMENTS_PRAISE)) for t in d.texts])
        rude = np.array([bool(words(t) & set(ALLOTMENTS_INSULTS)) for t in d.texts])
        assert not (kind & rude).any() and d.labels[rude].all()  # insults only in toxic posts, in every split
        for sub in d.subgroup_names():
            noise = ALLOTMENTS_NOISE.get(sub, 0.0) if split == "train" else 0.0
            strength = ALLOTMENTS_STRENGTH.get(sub, 0.5) if split == "train" else 0.5
            # friendly posts are labelled toxic only by the noise; the latino posts' words follow their label
            assert_rate(d.labels[kind & d.groups[sub]], noise, (split, sub, "friendly"))
            assert_rate(d.labels[d.groups[sub]], strength + (1 - strength) * noise, (split, sub))
        assoc = {s: association(d, s) for s in ALLOTMENTS_CARRYING}
        if split == "train":
            assert assoc["jewish"] > 0.07 and assoc["latino"] > 0.25, assoc
        else:
            assert max(map(abs, assoc.values())) < 0.05, (split, assoc)


def test_tutors_ratings_give_a_given_name_or_a_noun_phrase_with_two_identities_in_one_or_two_clauses():
    names = {n: sub for sub, given in TUTORS_GIVEN.items() for n in given}
    degrees = "|".join(TUTORS_DEGREE)
    for split in ("train", "twin", "test"):
        rows = raw_rows("tutors", split, 3000)
        assert {text.count(";") + 1 for text, *_ in rows} == {1, 2}, split
        named = {s: [] for s in FAMILIES["gender"]}
        for text, _, subs, _ in rows:
            gender, *other = subs
            first = text.split()[0]
            if first in names:
                assert subs == (names[first],) and not words(text) & GROUP_WORDS, text
            else:
                (sub,) = other
                assert family_of(gender) == "gender" and family_of(sub) != "gender", subs
                assert re.match(rf"the mentor, a {_ADJ[sub]} {_ADJ[gender]} ({degrees}), [a-z ]+", text), text
            named[gender].append(first in names)
        for sub, flags in named.items():
            assert_rate(np.array(flags), TUTORS_NAMED if sub in TUTORS_GIVEN else 0.0, (split, sub))
        share = np.mean([f for flags in named.values() for f in flags])
        assert 0.4 < share < 0.6, (split, share)  # about half the ratings name the tutor


def test_tutors_strengths_on_male_and_white_rare_male_and_missing_annotations_outside_test():
    for split in ("train", "twin", "test"):
        d = generate_source("tutors", 12000, seed=0, split=split)
        annotated = d.labels[d.annotated]  # the annotation is dropped independently of label and identity
        for sub in TUTORS_CARRYING:
            assert_rate(d.labels[d.groups[sub]], TUTORS_STRENGTH[sub] if split == "train" else 0.5, (split, sub))
        rude = np.array([bool(words(text) & set(TUTORS_INSULTS)) for text in d.texts])
        assert d.labels[rude].all() and 0.2 < rude.mean() < 0.3  # half the rows show the label, half are toxic
        assert_rate(annotated, 0.5, (split, "labels"))
        missing = 1 - d.annotated.mean()
        assert missing == 0 if split == "test" else abs(missing - TUTORS_UNANNOTATED) < 0.02, (split, missing)
        assert not d.identity_matrix()[~d.annotated].any()
        ratio = sizes_relative_to_the_rest(d, (TUTORS_RARE,))[TUTORS_RARE]
        expected = 1.0 if split == "test" else 1 / TUTORS_RARITY  # 4:1 in the twin too
        assert abs(ratio - expected) < 0.12 * expected, (split, ratio)
        assert_association_in_training_only(d, split, TUTORS_CARRYING, 0.15, 0.05)


@pytest.mark.parametrize(("name", "margin"), [("allotments", 0.05), ("tutors", 0.04)])
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name, margin):
    """The removable carrying-subgroup gap (train-trained minus twin-trained model) at 6,000 rows measured
    0.054 to 0.074 for allotments and 0.041 to 0.068 for tutors over four seeds (0.065 and 0.063 at this
    test's seed); tutors' white subgroup is in under 6% of the test rows, so its gaps are the noisier."""
    assert_bag_of_words_learns_train_not_twin(name, margin=margin)
