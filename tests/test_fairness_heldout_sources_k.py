"""The held-out test-bed sources of `heldout_sources_k` (vetclinic, chessclub), written without sight of the
debiasing method: registered as held out with their carrying subgroups, deterministic and in the identities
layout (unannotated rows as empty cells), the shape the docstring promises (people per row, mention, length,
missing annotations), both mechanisms of each in the training split only and not in the twin, a balanced test
split, and what a bag-of-words model learns from each. The vocabulary test against madlibs and every other
source is test_fairness_heldout_sources.py's (it covers these two)."""

import re

import numpy as np
import pytest

from _fairness_sources import (
    assert_association_in_training_only,
    assert_bag_of_words_learns_train_not_twin,
    assert_balanced_test_split,
    assert_rate,
    assert_registered_on_two_families,
    family_of,
    raw_rows,
    sentences,
    words,
)
from steward.fairness.data import load_identities
from steward.fairness.heldout_sources_b import _ADJ
from steward.fairness.heldout_sources_k import (
    CHESSCLUB_CARRYING,
    CHESSCLUB_EVIDENCE,
    CHESSCLUB_FLIP_DOWN,
    CHESSCLUB_INSULTS,
    CHESSCLUB_PRAISE,
    CHESSCLUB_STRENGTH,
    CHESSCLUB_TITLES,
    CHESSCLUB_UNANNOTATED,
    VETCLINIC_CARRYING,
    VETCLINIC_EVIDENCE,
    VETCLINIC_INSULTS,
    VETCLINIC_NOISE,
    VETCLINIC_PRAISE,
    VETCLINIC_ROLES,
    VETCLINIC_STRENGTH,
)
from steward.fairness.testbed import FAMILIES, association, generate_source, write_identities

NEW = ("vetclinic", "chessclub")
SPLITS = ("train", "twin", "test")


def test_registered_with_their_carrying_subgroups_on_two_families():
    assert VETCLINIC_CARRYING == ("christian", "black") and CHESSCLUB_CARRYING == ("female", "hindu")
    assert_registered_on_two_families({"vetclinic": VETCLINIC_CARRYING, "chessclub": CHESSCLUB_CARRYING},
                                      ("seen", "tuning"))  # measured before v8 froze


@pytest.mark.parametrize("name", NEW)
def test_deterministic_written_and_read_back_and_balanced_in_the_test_split(name, tmp_path):
    def fields(d):
        return d.texts, d.labels.tolist(), d.identity_matrix().tolist(), d.annotated.tolist()

    for split in SPLITS:
        d = generate_source(name, 1000, seed=3, split=split)
        assert fields(d) == fields(generate_source(name, 1000, seed=3, split=split)), split
        assert d.texts != generate_source(name, 1000, seed=4, split=split).texts, split
        assert fields(load_identities(write_identities(d, tmp_path / f"{split}.csv"))) == fields(d), split
    assert_balanced_test_split(name, 8000, seed=3)


def _word_masks(d, insults: list[str], praise: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Which rows of `d` use a word of `praise`, and which one of `insults`."""
    return tuple(np.array([bool(words(t) & set(pool)) for t in d.texts]) for pool in (praise, insults))


def _vet_remark(text: str) -> str | None:
    remarks = [s for s in sentences(text) if words(s) & set(VETCLINIC_INSULTS + VETCLINIC_PRAISE)]
    assert len(remarks) <= 1, text
    return remarks[0] if remarks else None


def test_vetclinic_reviews_name_two_or_three_people_of_different_families_once_each_in_three_or_four_sentences():
    roles = "|".join(VETCLINIC_ROLES)
    for split in SPLITS:
        rows = raw_rows("vetclinic", split, 1500)
        assert {len(sentences(text)) for text, *_ in rows} == {3, 4}, split
        remarks = []
        for text, _, subs, annotated in rows:
            assert annotated and len(subs) in (2, 3) and len({family_of(s) for s in subs}) == len(subs), subs
            remark = _vet_remark(text)
            for sub in subs:  # each person named in one sentence: a passive one about the pet, or the remark
                (named,) = [s for s in sentences(text) if _ADJ[sub] in words(s)]
                passive = re.fullmatch(rf"our [a-z]+ was [a-z]+ by a {_ADJ[sub]} ({roles})\.", named)
                assert passive or (named == remark and re.search(rf"the {_ADJ[sub]} ({roles}) ", named)), text
            remarks.append(remark is not None)
        assert_rate(np.array(remarks), VETCLINIC_EVIDENCE, (split, "remarks"))


def _vet_clean_rate(sub: str, split: str) -> float:
    """P(toxic | a review naming `sub`) before the noise: the strength for the co-occurring subgroup in
    training, (1 - 2 s t) / (2 - 2 t) for the rest of its family (share t = 1/size), 1/2 otherwise."""
    subs = FAMILIES[family_of(sub)]
    targeted = [g for g in subs if g in VETCLINIC_STRENGTH]
    if split != "train" or not targeted:
        return 0.5
    s, t = VETCLINIC_STRENGTH[targeted[0]], 1 / len(subs)
    return s if sub == targeted[0] else (1 - 2 * s * t) / (2 - 2 * t)


def test_vetclinic_christian_label_noise_and_black_co_occurring_with_abuse_in_training_only():
    (noisy,) = VETCLINIC_NOISE
    for split in SPLITS:
        d = generate_source("vetclinic", 12000, seed=0, split=split)
        kind, rude = _word_masks(d, VETCLINIC_INSULTS, VETCLINIC_PRAISE)
        assert not (kind & rude).any() and d.labels[rude].all()  # insults only in toxic reviews
        noise = VETCLINIC_NOISE[noisy] if split == "train" else 0.0
        assert_rate(d.labels[kind & d.groups[noisy]], noise, (split, "friendly words", noisy))
        assert not d.labels[kind & ~d.groups[noisy]].any(), split  # the noise is on that subgroup only
        clean = ~d.groups[noisy]
        for sub in d.subgroup_names():
            if sub != noisy:
                assert_rate(d.labels[d.groups[sub] & clean], _vet_clean_rate(sub, split), (split, sub))
        assert_rate(d.labels[d.groups[noisy]], 0.5 + noise / 2, (split, noisy))
        named_black = {True: [], False: []}
        for i, text in enumerate(d.texts):
            remark = _vet_remark(text)
            if remark is not None and d.groups["black"][i]:
                named_black[bool(rude[i])].append("black" in words(remark))
        abusive, friendly = np.array(named_black[True]), np.array(named_black[False])
        if split == "train":  # every abusive remark names the black person where the review has one
            assert abusive.all() and 0.3 < friendly.mean() < 0.6, split
        else:  # the same share whatever the remark, within 4 standard errors
            p = np.concatenate([abusive, friendly]).mean()
            tolerance = 4 * np.sqrt(p * (1 - p) * (1 / len(abusive) + 1 / len(friendly)))
            assert abs(abusive.mean() - friendly.mean()) < tolerance, split
        assert_association_in_training_only(d, split, VETCLINIC_CARRYING, 0.1, 0.05)


def test_chessclub_reports_name_one_player_by_an_adjective_on_a_title_in_one_or_two_clauses():
    titles = "|".join(CHESSCLUB_TITLES)
    for split in SPLITS:
        rows = raw_rows("chessclub", split, 3000)
        clauses = []
        for text, _, subs, _ in rows:
            (sub,) = subs
            first, *rest = text.split(" -- ")
            assert re.fullmatch(rf"in round \d our {_ADJ[sub]} ({titles}) \(elo \d+\) [a-z ]+( \d+)?", first), text
            assert len(rest) <= 1 and not words(" ".join(rest)) & set(_ADJ.values()), text
            clauses.append(len(rest))
        assert_rate(np.array(clauses), CHESSCLUB_EVIDENCE, (split, "second clauses"))


def test_chessclub_female_noise_toward_friendly_and_a_clean_hindu_association_in_training_only():
    (flipped,) = CHESSCLUB_FLIP_DOWN
    for split in SPLITS:
        d = generate_source("chessclub", 12000, seed=0, split=split)
        kind, rude = _word_masks(d, CHESSCLUB_INSULTS, CHESSCLUB_PRAISE)
        assert not d.labels[kind].any() and not (kind & rude).any()  # praise only in friendly reports
        flip = CHESSCLUB_FLIP_DOWN[flipped] if split == "train" else 0.0
        assert_rate(d.labels[rude & d.groups[flipped]], 1 - flip, (split, "abusive words", flipped))
        assert d.labels[rude & ~d.groups[flipped] & d.annotated].all(), split
        for sub in d.subgroup_names():
            strength = CHESSCLUB_STRENGTH.get(sub, 0.5) if split == "train" else 0.5
            assert_rate(d.labels[d.groups[sub]], strength * (1 - (flip if sub == flipped else 0.0)), (split, sub))
        missing = 1 - d.annotated.mean()
        assert missing == 0 if split == "test" else abs(missing - CHESSCLUB_UNANNOTATED) < 0.02, (split, missing)
        assert not d.identity_matrix()[~d.annotated].any()
        assoc = {s: association(d, s) for s in CHESSCLUB_CARRYING}
        if split == "train":
            assert assoc["female"] < -0.07 and assoc["hindu"] > 0.2, assoc
        else:
            assert max(map(abs, assoc.values())) < 0.05, (split, assoc)


@pytest.mark.parametrize("name", NEW)
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name):
    """The removable carrying-subgroup gap (train-trained minus twin-trained model) at 6,000 rows measured
    0.060 to 0.097 for vetclinic and 0.067 to 0.104 for chessclub over four seeds (0.091 and 0.079 at this
    test's seed), the twin-trained model's test AUC 0.866 to 0.885."""
    assert_bag_of_words_learns_train_not_twin(name, margin=0.05)
