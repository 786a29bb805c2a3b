"""The held-out test-bed sources of `heldout_sources_p` (makerspace, coxswain), written without sight of the debiasing
method: registered as held out with their carrying subgroups, deterministic and in the identities layout, the
shape the docstring promises (mention and its surface forms, length, people per row, missing annotations), the
association in the training split
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
    assert_rate,
    assert_registered_on_two_families,
    cached_source,
    family_of,
    raw_rows,
    sentences,
    words,
)
from steward.fairness.heldout_sources_b import _ADJ
from steward.fairness.heldout_sources_p import (
    COXSWAIN_CARRYING,
    COXSWAIN_EVIDENCE,
    COXSWAIN_FLIP_DOWN,
    COXSWAIN_FLIP_UP,
    COXSWAIN_INSULTS,
    COXSWAIN_PRAISE,
    COXSWAIN_ROWERS,
    COXSWAIN_SEATS,
    COXSWAIN_UNANNOTATED,
    MAKERSPACE_CARRYING,
    MAKERSPACE_EVIDENCE,
    MAKERSPACE_FORMS,
    MAKERSPACE_INSULTS,
    MAKERSPACE_PRAISE,
    MAKERSPACE_STRENGTH,
)
from steward.fairness.testbed import FAMILIES, association

NEW = ("makerspace", "coxswain")


def _split(name: str, split: str):
    """The rows the bag-of-words check reads: 6,000 of `train` and `twin` (seed 0), 3,000 of `test` (seed 1)."""
    return cached_source(name, 3000, seed=1, split="test") if split == "test" else cached_source(
        name, 6000, seed=0, split=split)


def test_registered_held_out_with_their_carrying_subgroups_on_two_families():
    assert MAKERSPACE_CARRYING == ("white", "christian") and COXSWAIN_CARRYING == ("male", "buddhist")
    assert_registered_on_two_families({"makerspace": MAKERSPACE_CARRYING, "coxswain": COXSWAIN_CARRYING},
                                      ("held_out",))


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
        # the test split's 3,000 rows hold about 170 christian notes: 0.12 is three standard errors
        assert_association_in_training_only(d, split, MAKERSPACE_CARRYING, 0.15, 0.12)


def test_coxswain_entries_name_two_or_three_rowers_of_different_subgroups_one_clause_each():
    seats, rowers = "|".join(COXSWAIN_SEATS), "|".join(COXSWAIN_ROWERS)
    clause = re.compile(rf"({seats}), an? ([a-z]+) ({rowers}), ([a-z ]+)")
    verdicts = set(COXSWAIN_INSULTS + COXSWAIN_PRAISE)
    for split in ("train", "twin", "test"):
        rows = raw_rows("coxswain", split, 3000)
        judged, families = [], []
        for text, _, subs, _ in rows:
            head, body = text.split(": ", 1)
            assert re.fullmatch(r"\d{4} outing, [a-z ]+", head) and body.endswith(".") and "." not in body[:-1], text
            parts = [clause.fullmatch(c) for c in body[:-1].split("; ")]
            assert all(parts) and [p[2] for p in parts] == [_ADJ[s] for s in subs], text  # one clause per rower
            assert len(subs) in (2, 3) and len(set(subs)) == len(subs) and len({p[1] for p in parts}) == len(subs)
            judged.append(sum(bool(words(p[4]) & verdicts) for p in parts))
            families.append(len({family_of(s) for s in subs}))
        assert set(judged) == {0, 1}, split  # at most one rower's clause shows the label
        assert_rate(np.array(judged), COXSWAIN_EVIDENCE, (split, "evidence"))
        assert np.mean(np.array(families) > 1) > 0.6, split  # most entries span several families


def _flip_shares(d, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Each annotated row's chance of a friendly label turning toxic and of a toxic one turning friendly, given
    the subgroups it names (the largest flip share among them; none outside training)."""
    names, m = d.subgroup_names(), d.identity_matrix().astype(bool)
    up, down = ([m[:, names.index(s)] * (f if split == "train" else 0.0) for s, f in flips.items()]
                for flips in (COXSWAIN_FLIP_UP, COXSWAIN_FLIP_DOWN))
    return np.max(up, 0), np.max(down, 0)


def test_coxswain_label_noise_both_ways_in_training_only_a_quarter_unannotated_outside_test():
    for split in ("train", "twin", "test"):
        d = _split("coxswain", split)
        missing = 1 - d.annotated.mean()
        assert missing == 0 if split == "test" else abs(missing - COXSWAIN_UNANNOTATED) < 0.02, (split, missing)
        assert not d.identity_matrix()[~d.annotated].any()
        assert set(d.identity_matrix()[d.annotated].sum(1)) == {2, 3}
        kind = np.array([bool(words(t) & set(COXSWAIN_PRAISE)) for t in d.texts])
        rude = np.array([bool(words(t) & set(COXSWAIN_INSULTS)) for t in d.texts])
        up, down = _flip_shares(d, split)
        for sub in d.subgroup_names():
            g = d.groups[sub]
            # the words show the drawn label: friendly words are toxic only by a flip up, abusive words friendly
            # only by a flip down (a male rower's friendly entries turn toxic whoever else they name)
            assert_rate(d.labels[kind & g], up[kind & g].mean(), (split, sub, "friendly words"))
            assert_rate(d.labels[rude & g], 1 - down[rude & g].mean(), (split, sub, "abusive words"))
            assert_rate(d.labels[g], (0.5 * (1 - down[g]) + 0.5 * up[g]).mean(), (split, sub))
        assoc = {s: association(d, s) for s in COXSWAIN_CARRYING}
        if split == "train":
            assert assoc["male"] > 0.08 and assoc["buddhist"] < -0.06, assoc
        else:
            assert max(map(abs, assoc.values())) < 0.06, (split, assoc)


@pytest.mark.parametrize(("name", "margin"), [("makerspace", 0.035), ("coxswain", 0.05)])
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name, margin):
    """The removable carrying-subgroup gap (train-trained minus twin-trained model) at 6,000 rows measured
    0.044 to 0.110 (mean 0.080) for makerspace and 0.068 to 0.100 (mean 0.087) for coxswain over eight seeds
    (0.044 and 0.094 at this test's seed; makerspace's christian notes are about 170 of the 3,000 test rows, so
    its gaps are the noisier); the twin-trained model's test AUC 0.856 to 0.886 and 0.862 to 0.879."""
    assert_bag_of_words_learns_train_not_twin(name, margin=margin)
