"""What the fairness test-bed tests measure on a source: a bag-of-words logistic regression's gaps, and
that every subgroup a generator mentions is a column."""

from __future__ import annotations

import re
from functools import cache

import numpy as np

from steward.fairness.data import load_identities
from steward.fairness.heldout_sources_b import _ADJ
from steward.fairness.metrics import fairness_report
from steward.fairness.testbed import FAMILIES, SOURCES, association, generate_source, write_identities

GROUP_WORDS = set(_ADJ.values())
"""The words that name a subgroup in the sources that use the column names ("trans" for transgender)."""


def sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.])\s+", text)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text))


def rows_using(d, vocabulary: list[str]) -> np.ndarray:
    """Which rows of a split's data `d` use a word of `vocabulary`."""
    return np.array([bool(words(t) & set(vocabulary)) for t in d.texts])


def family_of(sub: str) -> str:
    return next(f for f, subs in FAMILIES.items() if sub in subs)


@cache
def cached_source(name: str, n: int, *, seed: int, split: str):
    """`testbed.generate_source`, each (name, n, seed, split) built once per test session: for the tests that
    read the same split more than once (pass it as `generate` to `bag_of_words_gaps`)."""
    return generate_source(name, n, seed=seed, split=split)


def raw_rows(name: str, split: str, n: int) -> list[tuple[str, bool, tuple[str, ...], bool]]:
    """`n` rows of `split` as (text, toxic, subgroups mentioned, annotated), unannotated ones included."""
    rng = np.random.default_rng(0)
    return [(r.text, r.toxic, r.subgroups, r.annotated) for r in (SOURCES[name].row(rng, split) for _ in range(n))]


@cache
def bag_of_words_gaps(name: str, split: str, n_train: int,
                      generate=cached_source) -> tuple[dict[str, tuple[float, float]], float]:
    """A bag-of-words logistic regression (C 0.1) trained on `n_train` rows of `split` (seed 0) and scored
    on 3,000 balanced test rows (seed 1): each subgroup's (|BPSN gap|, |BNSP gap|), in the report's order,
    and the overall AUC. `generate`: `testbed.generate_source`'s signature. Built once per test session for the
    same arguments; do not
    mutate the result."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    train = generate(name, n_train, seed=0, split=split)
    test = generate(name, 3000, seed=1, split="test")
    vec = CountVectorizer().fit(train.texts)
    clf = LogisticRegression(C=0.1, max_iter=1000).fit(vec.transform(train.texts), train.labels)
    prob = clf.predict_proba(vec.transform(test.texts))[:, 1]
    report = fairness_report(test.labels, prob, test.groups, test.families)
    gaps = {r["subgroup"]: (abs(r["bpsn_auc_gap"]), abs(r["bnsp_auc_gap"])) for r in report["subgroups"]}
    return gaps, float(report["overall_auc"])


def carrying_gap(name: str, gaps: dict[str, tuple[float, float]]) -> float:
    """Mean |BPSN gap| and |BNSP gap| over the subgroups that carry `name`'s injected association."""
    return float(np.mean([g for s, pair in gaps.items() if s in SOURCES[name].carrying for g in pair]))


def assert_one_subgroup_named_in_the_first_sentence(d, lengths: set[int], form) -> None:
    """Every row of a split's data `d` is annotated with one subgroup, has one of `lengths` sentences and names
    the subgroup in its first sentence only; `form(first sentence, the subgroup's word)` says which of two
    forms of mention that sentence takes (True or False; None: neither), and both occur."""
    assert set(d.identity_matrix().sum(1)) == {1} and d.annotated.all()
    assert {len(sentences(t)) for t in d.texts} == lengths, d.meta
    forms = set()
    for text, sub in zip(d.texts, d.identity_matrix().argmax(1)):
        first, *rest = sentences(text)
        kind = form(first, _ADJ[d.subgroup_names()[sub]])
        assert kind is not None, text
        forms.add(kind)
        assert not GROUP_WORDS & words(" ".join(rest)), text  # named once, in the first sentence
    assert forms == {True, False}, d.meta


def assert_mentioned_subgroups_are_columns(name: str, rows: int) -> None:
    """Every subgroup `rows` generated rows of each split mention is a column, so none is dropped on the
    way to IdentityData."""
    rng = np.random.default_rng(0)
    for split in ("train", "twin", "test"):
        subs = {s for _ in range(rows) for s in SOURCES[name].row(rng, split).subgroups}
        assert subs == set(generate_source(name, 2, seed=0, split=split).groups), (name, split)


def assert_bag_of_words_learns_train_not_twin(name: str, margin: float, generate=cached_source,
                                             rows: int = 6000) -> None:
    """A bag-of-words model trained on `rows` rows of `name`'s biased split has a carrying-subgroup gap
    at least `margin` above the twin-trained model's, and the twin-trained model learns the label from
    the words (AUC above 0.85 on the balanced test split); `generate` as in `bag_of_words_gaps`."""
    gaps_b, _ = bag_of_words_gaps(name, "train", rows, generate)
    gaps_t, auc_t = bag_of_words_gaps(name, "twin", rows, generate)
    gap_b, gap_t = carrying_gap(name, gaps_b), carrying_gap(name, gaps_t)
    assert gap_b > gap_t + margin, (gap_b, gap_t)
    assert auc_t > 0.85, auc_t


def assert_rate(values: np.ndarray, expected: float, what) -> None:
    """The mean of 0/1 `values` is `expected` within 4 standard errors (a floor of 0.01 on the variance
    keeps a rate near 0 or 1 from demanding exactness)."""
    tolerance = 4 * np.sqrt(max(expected * (1 - expected), 0.01) / len(values))
    assert abs(values.mean() - expected) < tolerance, (what, values.mean(), expected, tolerance)


def assert_registered_with_role(names, roles: tuple[str, ...]) -> None:
    """Every source of `names` is in the test bed, with one of `roles` (`testbed.source_role`)."""
    from steward.fairness.testbed import source_role

    assert set(names) <= set(SOURCES), set(names) - set(SOURCES)
    assert all(source_role(n) in roles for n in names), {n: source_role(n) for n in names}


def assert_label_noise_in_training_only(d, split: str, friendly: np.ndarray, flipped: dict[str, float],
                                        carrying, min_train: float, max_elsewhere: float) -> None:
    """Label noise by group in split `split` of a source's data `d`: in training a share flipped[sub] of
    sub's friendly rows (`friendly`) is labelled toxic, so sub's toxic rate is 1/2 + flipped[sub]/2 (friendly
    rows are half of each subgroup's); in the twin and the test split none is. The carrying subgroups'
    association is above `min_train` in training and within `max_elsewhere` of 0 elsewhere."""
    for sub in d.subgroup_names():
        share = flipped.get(sub, 0.0) if split == "train" else 0.0
        assert_rate(d.labels[friendly & d.groups[sub]], share, (split, sub))
        assert_rate(d.labels[d.groups[sub]], 0.5 + share / 2, (split, sub))
    assert_association_in_training_only(d, split, carrying, min_train, max_elsewhere)


def assert_association_in_training_only(d, split: str, carrying, min_train: float, max_elsewhere: float) -> None:
    """The carrying subgroups' association (`testbed.association`) is above `min_train` in the training
    split and within `max_elsewhere` of 0 in the twin and the test split."""
    assoc = [association(d, s) for s in carrying]
    assert min(assoc) > min_train if split == "train" else max(map(abs, assoc)) < max_elsewhere, (split, assoc)


def sizes_relative_to_the_rest(d, carrying) -> dict[str, float]:
    """Each carrying subgroup's row count over the mean count of the other subgroups of its family."""
    out = {}
    for subs in FAMILIES.values():
        common = np.mean([d.groups[s].sum() for s in subs if s not in carrying])
        out |= {s: d.groups[s].sum() / common for s in subs if s in carrying}
    return out


def assert_imbalanced_and_associated_in_training_only(d, split: str, carrying, strength: float, ratio: float,
                                                      min_train: float) -> None:
    """Group imbalance and association in split `split`: the carrying subgroups are toxic at `strength` in
    training (the others, and every subgroup elsewhere, at 1/2); outside the test split they are `ratio`
    times as frequent as the rest of their family (within 15%), in the test split as frequent."""
    for sub in d.subgroup_names():
        strong = split == "train" and sub in carrying
        assert_rate(d.labels[d.groups[sub]], strength if strong else 0.5, (split, sub))
    expected = 1.0 if split == "test" else ratio
    for sub, r in sizes_relative_to_the_rest(d, carrying).items():
        assert abs(r - expected) < 0.15 * expected, (split, sub, r)
    assert_association_in_training_only(d, split, carrying, min_train, 0.06)


def assert_registered_on_two_families(carrying: dict[str, tuple[str, ...]], roles: tuple[str, ...]) -> None:
    """Each source of `carrying` is registered with one of `roles` and those carrying subgroups, of two
    families, and every subgroup it mentions is a column."""
    assert_registered_with_role(carrying, roles)
    for name, subs in carrying.items():
        assert SOURCES[name].carrying == subs, (name, SOURCES[name].carrying)
        assert len({family_of(s) for s in subs}) == 2, (name, subs)
        assert_mentioned_subgroups_are_columns(name, 400)


def assert_balanced_test_split(name: str, n: int, seed: int) -> None:
    """`n` rows of `name`'s test split are all annotated, half toxic, a family's subgroups equally frequent
    (within 20%) and the label independent of them."""
    test = generate_source(name, n, seed=seed, split="test")
    assert test.annotated.all()
    assert_rate(test.labels, 0.5, (name, "test labels"))
    for fam, subs in FAMILIES.items():
        sizes = np.array([test.groups[s].sum() for s in subs])
        assert sizes.min() > 0.8 * sizes.max(), (name, fam, sizes)
        for sub in subs:
            assert_rate(test.labels[test.groups[sub]], 0.5, (name, "test", sub))


def assert_deterministic_and_round_trips(name: str, directory) -> None:
    """`name`'s training split is the same for the same seed, differs for another, and reads back unchanged
    from the identities-layout CSV it writes into `directory`."""
    train = generate_source(name, 3000, seed=5, split="train")
    again = generate_source(name, 3000, seed=5, split="train")
    assert train.texts == again.texts and (train.labels == again.labels).all()
    assert (train.identity_matrix() == again.identity_matrix()).all() and (train.annotated == again.annotated).all()
    assert generate_source(name, 3000, seed=6, split="train").texts != train.texts
    got = load_identities(write_identities(train, directory / f"{name}.csv"))
    assert got.texts == train.texts and (got.labels == train.labels).all()
    assert (got.identity_matrix() == train.identity_matrix()).all() and (got.annotated == train.annotated).all()
