"""The three held-out test-bed sources of `heldout_sources_b` (qna, tickets, modqueue), written without
sight of the debiasing method: registered as held out, the shape the docstring promises (mention,
length, identities per row, missing annotations), the injected association in the training split only
(per-subgroup strengths, label noise by group, co-occurrence with insults) and not in the twin, and what
a bag-of-words model learns from each. Determinism, the identities layout and the balanced test split
are checked for every source in test_fairness_testbed.py; vocabulary in test_fairness_heldout_sources.py."""

import re

import numpy as np
import pytest

from _fairness_sources import (
    assert_bag_of_words_learns_train_not_twin,
    assert_mentioned_subgroups_are_columns,
    assert_registered_with_role,
)
from steward.fairness.heldout_sources_b import (
    _GROUPS,
    MODQUEUE_CARRYING,
    MODQUEUE_INSULTS,
    MODQUEUE_STRENGTH,
    QNA_CARRYING,
    QNA_STRENGTH,
    TICKETS_CARRYING,
    TICKETS_NOISE,
    TICKETS_PRAISE,
    TICKETS_RARITY,
)
from steward.fairness.testbed import (
    FAMILIES,
    SOURCES,
    association,
    generate_source,
)

NEW = ("qna", "tickets", "modqueue")


def _sentences(text: str) -> int:
    return len(re.split(r"(?<=[.?])\s+", text))


def test_registered_with_their_carrying_subgroups():
    # measured (or, qna and terraces, tuned on) before the current defaults were frozen: no longer untouched
    assert_registered_with_role(NEW, ("seen", "tuning"))
    assert SOURCES["qna"].carrying == QNA_CARRYING == ("atheist", "hindu", "muslim")
    assert SOURCES["tickets"].carrying == TICKETS_CARRYING and SOURCES["modqueue"].carrying == MODQUEUE_CARRYING
    assert _GROUPS == FAMILIES
    for name in NEW:
        assert_mentioned_subgroups_are_columns(name, 300)


def test_qna_questions_name_one_identity_by_possessive_or_pronoun_in_two_to_four_sentences():
    qna = generate_source("qna", 3000, seed=0, split="train")
    assert set(qna.identity_matrix().sum(1)) == {1} and qna.annotated.all()
    assert {_sentences(t) for t in qna.texts} == {2, 3, 4}
    possessive = np.array(["'s " in t.split("?")[0].split(":")[1] for t in qna.texts])
    pronoun = np.array([bool(re.match(r"q: (he|she|they), a ", t)) for t in qna.texts])
    assert not (possessive & pronoun).any() and 0.3 < possessive.mean() < 0.7 and pronoun.mean() > 0.15
    assert all(t.startswith("q: ") and " a: " in t for t in qna.texts)


def test_qna_strength_differs_by_subgroup_within_religion_in_training_only():
    for split in ("train", "twin", "test"):
        d = generate_source("qna", 12000, seed=0, split=split)
        for sub in d.subgroup_names():
            expected = QNA_STRENGTH.get(sub, 0.5) if split == "train" else 0.5
            assert abs(d.labels[d.groups[sub]].mean() - expected) < 0.06, (split, sub)
        if split == "train":
            assoc = [association(d, s) for s in ("atheist", "hindu", "muslim")]
            assert assoc[0] < assoc[1] - 0.08 and assoc[1] < assoc[2] - 0.08, assoc
        else:
            assert all(abs(association(d, s)) < 0.06 for s in QNA_CARRYING), split


def test_tickets_are_long_name_or_organisation_with_label_noise_and_rare_targets():
    train = generate_source("tickets", 6000, seed=0, split="train")
    assert {_sentences(t) for t in train.texts} == set(range(5, 11))
    assert set(train.identity_matrix().sum(1)) == {1} and train.annotated.all()
    by_org = np.array(["a member of the " in t for t in train.texts])
    gendered = train.groups["male"] | train.groups["female"]
    assert (by_org == ~gendered).all()  # a given name for male and female, an organisation otherwise
    polite = np.array([any(w in t for w in TICKETS_PRAISE) for t in train.texts])
    for split, ratio in (("train", TICKETS_RARITY), ("twin", TICKETS_RARITY), ("test", 1.0)):
        d = generate_source("tickets", 6000, seed=0, split=split)
        polite_d = np.array([any(w in t for w in TICKETS_PRAISE) for t in d.texts])
        targeted = np.any([d.groups[s] for s in TICKETS_CARRYING], 0)
        noise = d.labels[polite_d & targeted].mean()  # polite tickets labelled toxic
        assert abs(noise - (TICKETS_NOISE if split == "train" else 0.0)) < 0.06, (split, noise)
        assert not d.labels[polite_d & ~targeted].any()
        for subs in FAMILIES.values():  # the targeted subgroups 3x rarer, in the twin too
            common = np.mean([d.groups[s].sum() for s in subs if s not in TICKETS_CARRYING])
            for s in set(subs) & set(TICKETS_CARRYING):
                assert abs(d.groups[s].sum() / common - ratio) < 0.1 * ratio + 0.05, (split, s)
    assert polite.mean() > 0.15
    assert np.mean([association(train, s) for s in TICKETS_CARRYING]) > 0.1


def test_modqueue_posts_name_several_identities_and_quote_insults_to_condemn_them():
    train = generate_source("modqueue", 6000, seed=0, split="train")
    assert {_sentences(t) for t in train.texts} == {1, 2}
    n = np.array([len([w for w in ("crowd", "contingent") for _ in re.finditer(rf"\b{w}\b", t)])
                  for t in train.texts])
    assert set(n) == {2, 3}
    annotated = train.annotated
    assert 0.2 < 1 - annotated.mean() < 0.3 and (train.identity_matrix()[annotated].sum(1) == n[annotated]).all()
    assert generate_source("modqueue", 3000, seed=0, split="twin").annotated.mean() < 0.8
    insult = np.array([any(re.search(rf"\b{w}\b", t) for w in MODQUEUE_INSULTS) for t in train.texts])
    condemned = np.array(['"' in t or " are not " in t for t in train.texts])
    assert train.labels[insult & ~condemned].all() and not train.labels[condemned].any()
    assert 0.25 < (insult & ~train.labels).mean() / insult.mean() < 0.5  # insult words in non-toxic rows


def test_modqueue_targeted_mentions_co_occur_with_toxicity_in_training_only():
    for split in ("train", "twin", "test"):
        d = generate_source("modqueue", 6000, seed=0, split=split)
        assert abs(d.labels.mean() - 0.5) < 0.03
        for s in MODQUEUE_CARRYING:
            expected = MODQUEUE_STRENGTH if split == "train" else 0.5
            assert abs(d.labels[d.groups[s]].mean() - expected) < 0.06, (split, s)
        assoc = np.mean([association(d, s) for s in MODQUEUE_CARRYING])
        assert assoc > 0.25 if split == "train" else abs(assoc) < 0.04, (split, assoc)


@pytest.mark.parametrize("name", NEW)
def test_bag_of_words_learns_the_association_from_train_not_from_the_twin_and_the_label_from_words(name):
    assert_bag_of_words_learns_train_not_twin(name, margin=0.035)  # 0.056-0.077 at this seed
