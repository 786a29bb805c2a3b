"""The two held-out test-bed sources of `heldout_sources_c` (listings, terraces), written without sight of
the debiasing method: registered as held out, the shape the docstring promises (mention, length,
identities per row, missing annotations), the injected association in the training split only (0.7 on
two over-represented subgroups; co-occurrence plus label noise by group) and not in the twin, and what a
bag-of-words model learns from each. Determinism, the identities layout and the balanced test split are
checked for every source in test_fairness_testbed.py; vocabulary in test_fairness_heldout_sources.py."""

import re

import numpy as np
import pytest

from _fairness_sources import (
    assert_bag_of_words_learns_train_not_twin,
    assert_mentioned_subgroups_are_columns,
    assert_registered_with_role,
)
from steward.fairness.heldout_sources_c import (
    LISTINGS_CARRYING,
    LISTINGS_PREVALENCE,
    LISTINGS_STRENGTH,
    TERRACES_CARRYING,
    TERRACES_CO,
    TERRACES_NOISE,
    TERRACES_PRAISE,
    TERRACES_UNANNOTATED,
)
from steward.fairness.testbed import (
    FAMILIES,
    SOURCES,
    association,
    generate_source,
)

NEW = ("listings", "terraces")


def _sentences(text: str) -> int:
    return len(re.split(r"(?<=[.])\s+", text))


def _fans(text: str) -> int:
    """How many fan groups a terraces post names."""
    return len(re.findall(r"\b(supporters|ultras|fanclub|lads|lasses)\b", text))


def test_registered_with_their_carrying_subgroups():
    # measured (or, qna and terraces, tuned on) before the current defaults were frozen: no longer untouched
    assert_registered_with_role(NEW, ("seen", "tuning"))
    assert SOURCES["listings"].carrying == LISTINGS_CARRYING == ("buddhist", "latino")
    assert SOURCES["terraces"].carrying == TERRACES_CARRYING
    for name in NEW:
        assert_mentioned_subgroups_are_columns(name, 400)


def test_listings_name_one_identity_by_self_description_or_requirement_in_one_to_three_sentences():
    ads = generate_source("listings", 3000, seed=0, split="train")
    assert set(ads.identity_matrix().sum(1)) == {1} and ads.annotated.all()
    assert {_sentences(t) for t in ads.texts} == {1, 2, 3}
    first = [t.split(". ")[0] for t in ads.texts]
    wanted = np.array([bool(re.search(r"^seeking |; ideal for | will swap ", t)) for t in first])
    seller = np.array([bool(re.search(r"^for sale by | selling | must part with ", t)) for t in first])
    assert not (wanted & seller).any() and (wanted | seller).all() and 0.4 < wanted.mean() < 0.6


def test_listings_strength_on_two_over_represented_subgroups_in_training_only():
    for split in ("train", "twin", "test"):
        d = generate_source("listings", 12000, seed=0, split=split)
        for sub in d.subgroup_names():
            expected = LISTINGS_STRENGTH.get(sub, 0.5) if split == "train" else 0.5
            assert abs(d.labels[d.groups[sub]].mean() - expected) < 0.07, (split, sub)  # ~3 standard errors
        assoc = [association(d, s) for s in LISTINGS_CARRYING]
        assert min(assoc) > 0.15 if split == "train" else max(map(abs, assoc)) < 0.04, (split, assoc)
        ratio = 1.0 if split == "test" else LISTINGS_PREVALENCE  # targeted 2x more frequent, in the twin too
        for subs in FAMILIES.values():
            common = np.mean([d.groups[s].sum() for s in subs if s not in LISTINGS_CARRYING])
            for s in set(subs) & set(LISTINGS_CARRYING):
                assert abs(d.groups[s].sum() / common - ratio) < 0.1 * ratio, (split, s)
    assert all(abs(association(generate_source("listings", 12000, seed=0, split="train"), s)) < 0.12
               for s in FAMILIES["gender"])  # a family with no targeted subgroup


def test_terraces_posts_name_one_or_two_fan_groups_in_one_to_four_sentences_some_unannotated():
    for split in ("train", "twin", "test"):
        d = generate_source("terraces", 6000, seed=0, split=split)
        n = np.array([_fans(t) for t in d.texts])
        assert set(n) == {1, 2} and {_sentences(t) for t in d.texts} == {1, 2, 3, 4}
        a = d.annotated
        assert (d.identity_matrix()[a].sum(1) == n[a]).all() and not d.identity_matrix()[~a].any()
        missing = 1 - a.mean()
        assert missing == 0 if split == "test" else abs(missing - TERRACES_UNANNOTATED) < 0.03, (split, missing)


def test_terraces_targeted_fans_co_occur_with_toxicity_and_noisy_labels_in_training_only():
    for split in ("train", "twin", "test"):
        d = generate_source("terraces", 12000, seed=0, split=split)
        two = np.array([_fans(t) == 2 for t in d.texts])
        toxic_words = d.labels & ~np.array([any(w in t for w in TERRACES_PRAISE) for t in d.texts])
        share = two[toxic_words].mean(), two[~d.labels].mean()  # second mention: in toxic posts, in others
        friendly = np.array([any(w in t for w in TERRACES_PRAISE) for t in d.texts])
        targeted = np.any([d.groups[s] for s in TERRACES_CARRYING], 0)
        noise = d.labels[friendly & targeted].mean()  # friendly posts labelled toxic
        assert not d.labels[friendly & ~targeted & d.annotated].any()
        if split == "train":
            assert abs(share[0] - TERRACES_CO) < 0.05 and share[1] == 0, share
            assert abs(noise - TERRACES_NOISE) < 0.05 and noise > 0.15, noise
            assert all(association(d, s) > 0.2 for s in TERRACES_CARRYING)
        else:
            assert abs(share[0] - share[1]) < 0.03 and noise == 0, (split, share, noise)
            assert all(abs(association(d, s)) < 0.04 for s in TERRACES_CARRYING), split


@pytest.mark.parametrize("name", NEW)
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name):
    assert_bag_of_words_learns_train_not_twin(name, margin=0.05)  # 0.065-0.073 at this seed
