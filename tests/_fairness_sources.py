"""What the fairness test-bed tests measure on a source: a bag-of-words logistic regression's gaps, and
that every subgroup a generator mentions is a column."""

from __future__ import annotations

import numpy as np

from steward.fairness.metrics import fairness_report
from steward.fairness.testbed import SOURCES, generate_source


def bag_of_words_gaps(name: str, split: str, n_train: int) -> tuple[dict[str, tuple[float, float]], float]:
    """A bag-of-words logistic regression (C 0.1) trained on `n_train` rows of `split` (seed 0) and scored
    on 3,000 balanced test rows (seed 1): each subgroup's (|BPSN gap|, |BNSP gap|), in the report's order,
    and the overall AUC."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    train = generate_source(name, n_train, seed=0, split=split)
    test = generate_source(name, 3000, seed=1, split="test")
    vec = CountVectorizer().fit(train.texts)
    clf = LogisticRegression(C=0.1, max_iter=1000).fit(vec.transform(train.texts), train.labels)
    prob = clf.predict_proba(vec.transform(test.texts))[:, 1]
    report = fairness_report(test.labels, prob, test.groups, test.families)
    gaps = {r["subgroup"]: (abs(r["bpsn_auc_gap"]), abs(r["bnsp_auc_gap"])) for r in report["subgroups"]}
    return gaps, float(report["overall_auc"])


def carrying_gap(name: str, gaps: dict[str, tuple[float, float]]) -> float:
    """Mean |BPSN gap| and |BNSP gap| over the subgroups that carry `name`'s injected association."""
    return float(np.mean([g for s, pair in gaps.items() if s in SOURCES[name].carrying for g in pair]))


def assert_mentioned_subgroups_are_columns(name: str, rows: int) -> None:
    """Every subgroup `rows` generated rows of each split mention is a column, so none is dropped on the
    way to IdentityData."""
    rng = np.random.default_rng(0)
    for split in ("train", "twin", "test"):
        subs = {s for _ in range(rows) for s in SOURCES[name].row(rng, split).subgroups}
        assert subs == set(generate_source(name, 2, seed=0, split=split).groups), (name, split)


def assert_bag_of_words_learns_train_not_twin(name: str, margin: float) -> None:
    """A bag-of-words model trained on 6,000 rows of `name`'s biased split has a carrying-subgroup gap
    at least `margin` above the twin-trained model's, and the twin-trained model learns the label from
    the words (AUC above 0.85 on the balanced test split)."""
    gaps_b, _ = bag_of_words_gaps(name, "train", 6000)
    gaps_t, auc_t = bag_of_words_gaps(name, "twin", 6000)
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
