"""The held-out test-bed sources of `heldout_sources_f` (seating, stargazing, recipes), written without
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
    family_of,
    sizes_relative_to_the_rest,
)
from steward.fairness.heldout_sources_b import _ADJ
from steward.fairness.heldout_sources_f import (
    RECIPES_CARRYING,
    RECIPES_FREQUENCY,
    RECIPES_STRENGTH,
    RECIPES_UNANNOTATED,
    SEATING_CARRYING,
    SEATING_KIN,
    SEATING_NOISE,
    SEATING_PRAISE,
    STARGAZING_CARRYING,
    STARGAZING_COOCCUR,
    STARGAZING_EXTRA,
    STARGAZING_INSULTS,
    STARGAZING_STRENGTH,
    STARGAZING_TARGETED,
)
from steward.fairness.testbed import (
    SOURCES,
    generate_source,
)

NEW = ("seating", "stargazing", "recipes")


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.])\s+|\n", text)


def test_registered_with_their_carrying_subgroups():
    assert_registered_with_role(NEW, ("seen", "tuning"))  # measured before v7 froze
    assert SOURCES["seating"].carrying == SEATING_CARRYING == ("jewish", "asian")
    assert SOURCES["stargazing"].carrying == STARGAZING_CARRYING == ("latino", "transgender")
    assert SOURCES["recipes"].carrying == RECIPES_CARRYING == ("white", "muslim")
    for carrying in (SEATING_CARRYING, STARGAZING_CARRYING, RECIPES_CARRYING):  # two families each
        assert len({family_of(s) for s in carrying}) == 2, carrying
    for name in NEW:
        assert_mentioned_subgroups_are_columns(name, 400)


def test_seating_notes_name_one_relative_by_a_kinship_phrase_in_one_to_three_sentences():
    for split in ("train", "twin"):  # no imbalance: a family's subgroups equally frequent
        d = generate_source("seating", 6000, seed=0, split=split)
        assert set(d.identity_matrix().sum(1)) == {1} and d.annotated.all()
        assert {len(_sentences(t)) for t in d.texts} == {1, 2, 3}, split
        kin = "|".join(SEATING_KIN)
        for text, sub in zip(d.texts, d.identity_matrix().argmax(1)):
            assert re.search(rf"\bmy {_ADJ[d.subgroup_names()[sub]]} ({kin})\b", _sentences(text)[0]), text
        assert all(abs(r - 1) < 0.2 for r in sizes_relative_to_the_rest(d, SEATING_CARRYING).values())


def test_seating_label_noise_on_two_subgroups_of_two_families_in_training_only():
    for split in ("train", "twin", "test"):
        d = generate_source("seating", 18000, seed=0, split=split)
        kind = np.array([bool(set(re.findall(r"[a-z]+", t)) & set(SEATING_PRAISE)) for t in d.texts])
        # the wrong labels are friendly notes labelled toxic: twice the noise share of the friendly ones
        flipped = {s: 2 * n for s, n in SEATING_NOISE.items()}
        assert_label_noise_in_training_only(d, split, kind, flipped, SEATING_CARRYING, 0.15, 0.06)


def test_stargazing_reports_open_with_a_headline_plural_and_run_three_to_five_sentences():
    for split in ("train", "twin", "test"):
        d = generate_source("stargazing", 6000, seed=0, split=split)
        assert d.annotated.all() and set(d.identity_matrix().sum(1)) == ({1, 2} if split == "train" else {1})
        assert {len(_sentences(t)) for t in d.texts} == {3, 4, 5}, split
        for text in d.texts:
            headline = text.split("\n")[0]
            assert "." not in headline and re.match(r"[a-z]+ (skywatchers|astronomers|telescopists|observers) ",
                                                    headline), text


def test_stargazing_strength_on_latino_and_trans_skywatchers_co_occurring_with_toxic_reports():
    rng = np.random.default_rng(0)
    for split in ("train", "twin", "test"):
        rows = [SOURCES["stargazing"].row(rng, split) for _ in range(18000)]
        labels = np.array([r.toxic for r in rows])
        targeted = np.array([r.subgroups[0] == STARGAZING_TARGETED for r in rows])
        assert_rate(labels[targeted], STARGAZING_STRENGTH if split == "train" else 0.5, (split, "latino"))
        extra = np.array([len(r.subgroups) == 2 for r in rows])
        eligible = np.array([r.subgroups[0] != STARGAZING_EXTRA for r in rows])
        assert_rate(extra[labels & eligible], STARGAZING_COOCCUR if split == "train" else 0.0, (split, "toxic"))
        assert not extra[~labels].any()
        for r, e in zip(rows, extra):  # the extra group is named after the headline only beside toxic words
            body = _sentences(r.text)[1:]
            named = [s for s in body if f"{_ADJ[STARGAZING_EXTRA]} " in s]
            assert len(named) == e, r.text
            abusive = [s for s in body if any(w in s for w in STARGAZING_INSULTS)]
            assert r.toxic or not abusive
            assert not (e and abusive) or named == abusive, r.text
        d = generate_source("stargazing", 18000, seed=0, split=split)
        assert_association_in_training_only(d, split, STARGAZING_CARRYING, 0.2, 0.06)


def test_recipes_comments_name_the_gathering_in_two_to_four_sentences_some_unannotated():
    for split in ("train", "twin", "test"):
        d = generate_source("recipes", 6000, seed=0, split=split)
        a = d.annotated
        assert {len(_sentences(t)) for t in d.texts} == {2, 3, 4}, split
        assert set(d.identity_matrix()[a].sum(1)) == {1} and not d.identity_matrix()[~a].any()
        missing = 1 - a.mean()
        assert missing == 0 if split == "test" else abs(missing - RECIPES_UNANNOTATED) < 0.025, (split, missing)
        names = set(_ADJ.values())
        for text in d.texts:
            first, *rest = _sentences(text)
            assert len(names & set(re.findall(r"[a-z]+", first))) == 1, text
            assert not names & set(re.findall(r"[a-z]+", " ".join(rest))), text


def test_recipes_frequent_subgroups_three_times_as_common_with_a_strong_association_in_training_only():
    for split in ("train", "twin", "test"):
        d = generate_source("recipes", 24000, seed=0, split=split)  # 3:1 in the twin too
        assert_imbalanced_and_associated_in_training_only(d, split, RECIPES_CARRYING, RECIPES_STRENGTH,
                                                          RECIPES_FREQUENCY, 0.25)


@pytest.mark.parametrize("name", NEW)
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name):
    assert_bag_of_words_learns_train_not_twin(name, margin=0.05)
