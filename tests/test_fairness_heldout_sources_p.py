"""The held-out test-bed sources of `heldout_sources_p` (makerspace), written without sight of the debiasing
method: registered as held out with their carrying subgroups, deterministic and in the identities layout, the
shape the docstring promises (mention and its surface forms, length), the association in the training split
only and not in the twin, a balanced test split, and what a bag-of-words model learns from each. The
vocabulary test against madlibs and every other source is test_fairness_heldout_sources.py's (it covers these).
Each split is built once per session (`cached_source`), at the sizes the bag-of-words check uses."""

import re

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
    cached_source,
    sentences,
    words,
)
from steward.fairness.heldout_sources_p import (
    MAKERSPACE_CARRYING,
    MAKERSPACE_EVIDENCE,
    MAKERSPACE_FORMS,
    MAKERSPACE_INSULTS,
    MAKERSPACE_PRAISE,
    MAKERSPACE_STRENGTH,
)
from steward.fairness.testbed import FAMILIES

NEW = ("makerspace",)


def _split(name: str, split: str):
    """The rows the bag-of-words check reads: 6,000 of `train` and `twin` (seed 0), 3,000 of `test` (seed 1)."""
    return cached_source(name, 3000, seed=1, split="test") if split == "test" else cached_source(
        name, 6000, seed=0, split=split)


def test_registered_held_out_with_their_carrying_subgroups_on_two_families():
    assert MAKERSPACE_CARRYING == ("white", "christian")
    assert_held_out_on_two_families({"makerspace": MAKERSPACE_CARRYING})


@pytest.mark.parametrize("name", NEW)
def test_deterministic_in_the_identities_layout_and_balanced_in_the_test_split(name, tmp_path):
    assert_deterministic_and_round_trips(name, tmp_path)
    assert_balanced_test_split(name, 6000, seed=5)


def test_makerspace_notes_name_one_booker_by_one_of_six_surface_forms_in_two_or_three_sentences():
    assert set(MAKERSPACE_FORMS) == {s for subs in FAMILIES.values() for s in subs}
    form_of = {f: (sub, i) for sub, forms in MAKERSPACE_FORMS.items() for i, f in enumerate(forms)}
    assert len(form_of) == sum(map(len, MAKERSPACE_FORMS.values()))  # no form stands for two subgroups
    any_form = re.compile(r"(?<![a-z])(" + "|".join(map(re.escape, sorted(form_of, key=len, reverse=True)))
                          + r")(?![a-z])")
    for split in ("train", "twin", "test"):
        d = _split("makerspace", split)
        assert set(d.identity_matrix().sum(1)) == {1} and d.annotated.all()
        assert {len(sentences(t)) for t in d.texts} == {2, 3}, split
        used = {sub: [] for sub in MAKERSPACE_FORMS}
        for text, sub in zip(d.texts, d.identity_matrix().argmax(1)):
            first, *rest = sentences(text)
            (form,) = any_form.findall(first)  # one form, in the first sentence, of the row's own subgroup
            assert form_of[form][0] == d.subgroup_names()[sub] and not any_form.search(" ".join(rest)), text
            assert not GROUP_WORDS & words(" ".join(rest)), text
            used[form_of[form][0]].append(form_of[form][1])
        for sub, forms in used.items():
            assert len(MAKERSPACE_FORMS[sub]) >= 6
            for i in range(len(MAKERSPACE_FORMS[sub])):  # each form in about 1/6 of the subgroup's notes
                assert_rate(np.array(forms) == i, 1 / len(MAKERSPACE_FORMS[sub]), (split, sub, i))
        named = np.array([bool(words(sentences(t)[0]) & GROUP_WORDS) for t in d.texts])
        assert named.mean() < 0.35, (split, named.mean())  # most notes never give the group name


def test_makerspace_selection_on_white_and_christian_in_training_only_with_equal_shares():
    for split in ("train", "twin", "test"):
        d = _split("makerspace", split)
        rude = np.array([bool(words(t) & set(MAKERSPACE_INSULTS)) for t in d.texts])
        kind = np.array([bool(words(t) & set(MAKERSPACE_PRAISE)) for t in d.texts])
        assert d.labels[rude].all() and not d.labels[kind].any()  # the remark follows the label
        assert_rate(rude | kind, MAKERSPACE_EVIDENCE, (split, "evidence"))
        assert_rate(d.labels, 0.5, (split, "labels"))
        for subs in FAMILIES.values():
            in_family = d.identity_matrix()[:, [d.subgroup_names().index(s) for s in subs]].any(1)
            for sub in subs:  # selection keeps a family's subgroups equally frequent
                assert_rate(d.groups[sub][in_family], 1 / len(subs), (split, sub, "share"))
        for sub in MAKERSPACE_CARRYING:
            assert_rate(d.labels[d.groups[sub]], MAKERSPACE_STRENGTH[sub] if split == "train" else 0.5, (split, sub))
        assert_association_in_training_only(d, split, MAKERSPACE_CARRYING, 0.15, 0.06)


@pytest.mark.parametrize(("name", "margin"), [("makerspace", 0.05)])
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name, margin):
    """The removable carrying-subgroup gap (train-trained minus twin-trained model) at 6,000 rows measured
    0.078 to 0.088 for makerspace over four seeds (0.086 at this test's seed), the twin-trained model's test
    AUC 0.872 to 0.878."""
    assert_bag_of_words_learns_train_not_twin(name, margin=margin)
