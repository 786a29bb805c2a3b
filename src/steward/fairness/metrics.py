"""Group fairness metrics for a binary classifier's scores.

Definitions and their sources:

- Subgroup AUC, BPSN AUC (background positive, subgroup negative) and BNSP AUC (background
  negative, subgroup positive): Borkan, Dixon, Sorensen, Thain, Vasserman 2019, "Nuanced metrics for
  measuring unintended bias with real data for text classification", section 3.
- Generalized mean of the bias AUCs M_p = (mean_s m_s^p)^(1/p) with p = -5, and the final score
  0.25 * overall AUC + sum over the three bias AUCs of 0.25 * M_p: the Jigsaw Unintended Bias in
  Toxicity Classification competition's evaluation (Kaggle 2019).
- FPED = sum_g |FPR - FPR_g| and FNED = sum_g |FNR - FNR_g| at a threshold: Dixon, Li, Sorensen,
  Thain, Vasserman 2018, "Measuring and mitigating unintended bias in text classification", section 5.
- Demographic-parity difference (largest minus smallest selection rate among a family's subgroups)
  and equalized-odds difference (the larger of the TPR and FPR ranges): as `fairlearn.metrics`
  defines them (agg="worst_case").

The *gap* of a bias AUC is (bias AUC - overall AUC); a family's *mean absolute gap* is the mean of
|gap| over its subgroups and the three bias AUCs. This is the figure the benchmark and the monitor
watch.

NaN handling (documented behaviour, not an error): a subgroup whose examples (or whose BPSN/BNSP
mixture) hold one class only has NaN for that AUC, and a reason in `skipped`; NaNs are left out of
family means and generalized means. A subgroup with no examples at all is an error in
`subgroup_metrics` (it names the subgroup) because it almost always means a wrong identity column;
`fairness_report` records it in `skipped` instead, so a monitor on a small held-out set keeps going.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from steward.errors import StewardError
from steward.io import flatten_dict

BIAS_AUCS = ("subgroup_auc", "bpsn_auc", "bnsp_auc")
POWER = -5.0
"""Exponent of the generalized mean (Jigsaw competition evaluation)."""
WEIGHT = 0.25
"""Weight of the overall AUC and of each bias AUC's generalized mean in the final score."""


class FairnessError(StewardError, ValueError):
    """Bad fairness input (labels, scores, identity columns); the message names what and how to fix it."""


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by the Mann-Whitney U statistic (ties count half); NaN for one class.

    Same value as sklearn.metrics.roc_auc_score, in O(n log n) without its input checks (the
    bootstrap calls this thousands of times)."""
    y = np.asarray(y, dtype=bool)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(s.size, dtype=np.float64)
    # average ranks over runs of equal scores
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    ends = np.r_[starts[1:], s.size]
    avg = (starts + ends + 1) / 2.0  # 1-based mean rank of each run
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def generalized_mean(values: np.ndarray | list[float], p: float = POWER) -> float:
    """(mean v^p)^(1/p) over the finite values; NaN when none is finite."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan
    if np.any(v <= 0):
        return 0.0  # the limit for p < 0 when any value is 0
    return float(np.mean(v**p) ** (1.0 / p))


def _check(y: np.ndarray, score: np.ndarray, groups: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    score = np.asarray(score, dtype=np.float64)
    if y.ndim != 1 or score.shape != y.shape:
        raise FairnessError(f"labels and scores must be 1-D of the same length, got {y.shape} and {score.shape}")
    if not np.all(np.isfinite(score)):
        raise FairnessError("scores: contain NaN or infinity; check the model's outputs")
    if y.dtype != bool:
        bad = ~np.isin(y, (0, 1))
        if bad.any():
            raise FairnessError(f"labels: must be 0/1 (binarise targets at 0.5 first), got {y[bad][0]!r}")
    for name, mask in groups.items():
        m = np.asarray(mask)
        if m.shape != y.shape or m.dtype != bool:
            raise FairnessError(f"identity column {name!r}: must be a boolean mask of {y.size} rows, "
                                f"got dtype {m.dtype} shape {m.shape}")
    return y.astype(bool), score


@dataclass
class SubgroupRow:
    subgroup: str
    family: str
    size: int
    positives: int
    subgroup_auc: float
    bpsn_auc: float
    bnsp_auc: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _subgroup_aucs(y: np.ndarray, score: np.ndarray, m: np.ndarray) -> tuple[float, float, float]:
    sub = roc_auc(y[m], score[m])
    bpsn = (~m & y) | (m & ~y)
    bnsp = (~m & ~y) | (m & y)
    return sub, roc_auc(y[bpsn], score[bpsn]), roc_auc(y[bnsp], score[bnsp])


def subgroup_metrics(
    y: np.ndarray, score: np.ndarray, groups: dict[str, np.ndarray], families: dict[str, list[str]] | None = None,
    *, allow_empty: bool = False,
) -> tuple[list[SubgroupRow], dict[str, str]]:
    """Subgroup, BPSN and BNSP AUC per subgroup; returns (rows, skipped: subgroup/metric -> reason)."""
    y, score = _check(y, score, groups)
    family_of = {s: f for f, subs in (families or {}).items() for s in subs}
    rows, skipped = [], {}
    for name, mask in groups.items():
        m = np.asarray(mask, dtype=bool)
        n = int(m.sum())
        if n == 0:
            if not allow_empty:
                raise FairnessError(f"subgroup {name!r}: no examples belong to it; check the identity column "
                                    "(values are annotator fractions, binarised at >= 0.5) or drop it")
            skipped[name] = "empty subgroup"
            continue
        sub, bpsn, bnsp = _subgroup_aucs(y, score, m)
        pos = int(y[m].sum())
        if math.isnan(sub):
            skipped[f"{name}/subgroup_auc"] = f"one class only ({pos} positive of {n})"
        if math.isnan(bpsn):
            skipped[f"{name}/bpsn_auc"] = "no subgroup negatives or no background positives"
        if math.isnan(bnsp):
            skipped[f"{name}/bnsp_auc"] = "no subgroup positives or no background negatives"
        rows.append(SubgroupRow(name, family_of.get(name, "other"), n, pos, sub, bpsn, bnsp))
    return rows, skipped


def _rates(y: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """(selection rate, TPR, FPR); NaN where undefined."""
    sel = float(pred.mean()) if pred.size else math.nan
    tpr = float(pred[y].mean()) if y.any() else math.nan
    fpr = float(pred[~y].mean()) if (~y).any() else math.nan
    return sel, tpr, fpr


def error_rate_equality(y: np.ndarray, pred: np.ndarray, groups: dict[str, np.ndarray]) -> tuple[float, float]:
    """(FPED, FNED) over `groups` (Dixon et al. 2018); subgroups without negatives (positives) are left out."""
    _, tpr, fpr = _rates(y, pred)
    fped = fned = 0.0
    for mask in groups.values():
        _, t, f = _rates(y[mask], pred[mask])
        if not math.isnan(f):
            fped += abs(fpr - f)
        if not math.isnan(t):
            fned += abs((1 - tpr) - (1 - t))
    return fped, fned


def family_sensitive_feature(groups: dict[str, np.ndarray], subgroups: list[str]) -> np.ndarray:
    """One label per example: the family's subgroup it belongs to, '' for none or several.

    The group-rate differences compare subgroups with each other, so they use the examples that
    belong to exactly one subgroup of the family."""
    present = [s for s in subgroups if s in groups]
    n = len(next(iter(groups.values()))) if groups else 0
    out = np.full(n, "", dtype=object)
    if not present:
        return out
    stack = np.stack([np.asarray(groups[s], dtype=bool) for s in present])
    one = stack.sum(0) == 1
    idx = stack.argmax(0)
    out[one] = np.asarray(present, dtype=object)[idx[one]]
    return out


def parity_differences(y: np.ndarray, pred: np.ndarray, feature: np.ndarray) -> tuple[float, float]:
    """(demographic-parity difference, equalized-odds difference) among the labels of `feature` ('' left out),
    as fairlearn.metrics' demographic_parity_difference and equalized_odds_difference compute them."""
    keep = feature != ""
    labels = sorted(set(feature[keep].tolist()))
    if len(labels) < 2:
        return math.nan, math.nan
    sel, tpr, fpr = [], [], []
    for g in labels:
        m = keep & (feature == g)
        s, t, f = _rates(y[m], pred[m])
        sel.append(s)
        tpr.append(t)
        fpr.append(f)

    def spread(v: list[float]) -> float:
        v2 = [x for x in v if not math.isnan(x)]
        return max(v2) - min(v2) if len(v2) >= 2 else math.nan

    return spread(sel), max(spread(tpr), spread(fpr))


def _point(y: np.ndarray, score: np.ndarray, groups: dict[str, np.ndarray],
           families: dict[str, list[str]], threshold: float) -> dict[str, Any]:
    """Every figure of the report on one sample, without the skip bookkeeping (for the bootstrap)."""
    overall = roc_auc(y, score)
    pred = score >= threshold
    out: dict[str, Any] = {"overall_auc": overall}
    per_family: dict[str, float] = {}
    all_aucs: dict[str, list[float]] = {k: [] for k in BIAS_AUCS}
    for fam, subs in families.items():
        gaps = []
        for s in subs:
            m = groups.get(s)
            if m is None or not m.any():
                continue
            for k, v in zip(BIAS_AUCS, _subgroup_aucs(y, score, m)):
                all_aucs[k].append(v)
                if not math.isnan(v):
                    gaps.append(abs(v - overall))
        per_family[fam] = float(np.mean(gaps)) if gaps else math.nan
    out["mean_abs_gap"] = per_family
    means = {k: generalized_mean(v) for k, v in all_aucs.items()}
    out["generalized_mean"] = means
    out["final_score"] = WEIGHT * overall + sum(WEIGHT * means[k] for k in BIAS_AUCS)
    present = {s: groups[s] for subs in families.values() for s in subs if s in groups and groups[s].any()}
    out["fped"], out["fned"] = error_rate_equality(y, pred, present)
    out["demographic_parity_difference"], out["equalized_odds_difference"] = {}, {}
    for fam, subs in families.items():
        dp, eo = parity_differences(y, pred, family_sensitive_feature(groups, subs))
        out["demographic_parity_difference"][fam] = dp
        out["equalized_odds_difference"][fam] = eo
    return out


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """{"mean_abs_gap/gender": x} -> {"mean_abs_gap": {"gender": x}}: undoes flatten_dict(sep="/")."""
    out: dict[str, Any] = {}
    for key, v in flat.items():
        parts = key.split("/")
        d = out
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = v
    return out


def fairness_report(
    y: np.ndarray, score: np.ndarray, groups: dict[str, np.ndarray], families: dict[str, list[str]],
    *, threshold: float = 0.5, bootstrap: int = 0, confidence: float = 0.95, seed: int = 0,
) -> dict[str, Any]:
    """All metrics on one evaluation set, as plain JSON-able data.

    `y`: 0/1 labels; `score`: probabilities (or any monotone score; `threshold` applies to the
    thresholded figures); `groups`: subgroup name -> boolean mask; `families`: family -> subgroup
    names. With `bootstrap` > 0, percentile confidence intervals (resampling examples with
    replacement) go under "ci" for every scalar figure, keyed like the flattened figure
    ("mean_abs_gap/gender"). NaN marks figures that cannot be computed (see the module docstring).
    """
    y, score = _check(y, score, groups)
    if np.unique(y).size < 2:
        raise FairnessError("labels: the evaluation set holds one class only; AUCs need both toxic and non-toxic examples")
    groups = {k: np.asarray(v, dtype=bool) for k, v in groups.items()}
    rows, skipped = subgroup_metrics(y, score, groups, families, allow_empty=True)
    point = _point(y, score, groups, families, threshold)
    overall = point["overall_auc"]
    report: dict[str, Any] = {
        "n": int(y.size),
        "positives": int(y.sum()),
        "threshold": threshold,
        **point,
        "subgroups": [
            {**r.to_dict(), **{f"{k}_gap": getattr(r, k) - overall for k in BIAS_AUCS}} for r in rows
        ],
        "skipped": skipped,
    }
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        flat_point = flatten_dict(point, sep="/", leaf=float)
        samples: dict[str, list[float]] = {k: [] for k in flat_point}
        for _ in range(bootstrap):
            idx = rng.integers(0, y.size, y.size)
            yb = y[idx]
            if yb.all() or not yb.any():
                continue
            fb = flatten_dict(_point(yb, score[idx], {k: v[idx] for k, v in groups.items()}, families, threshold),
                              sep="/", leaf=float)
            for k in samples:
                samples[k].append(fb.get(k, math.nan))
        lo_q, hi_q = (1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100
        ci = {}
        for k, vals in samples.items():
            v = np.asarray(vals)
            v = v[np.isfinite(v)]
            ci[k] = [float(np.percentile(v, lo_q)), float(np.percentile(v, hi_q))] if v.size else [math.nan, math.nan]
        report["ci"] = ci
        report["bootstrap"] = {"resamples": bootstrap, "confidence": confidence, "seed": seed}
    return report


def classification_metrics(y: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AUC, accuracy and F1 (positive class) of probabilities against 0/1 labels."""
    y = np.asarray(y, dtype=bool)
    pred = np.asarray(prob) >= threshold
    tp = float((pred & y).sum())
    fp = float((pred & ~y).sum())
    fn = float((~pred & y).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan
    return {"auc": roc_auc(y, prob), "accuracy": float((pred == y).mean()), "f1": f1}


def summary_figures(report: dict[str, Any]) -> dict[str, float]:
    """The compact figures a monitor logs: overall AUC, final score, per-family mean |gap|."""
    out = {"fair_overall_auc": report["overall_auc"], "fair_final_score": report["final_score"]}
    for fam, v in report["mean_abs_gap"].items():
        out[f"fair_gap_{fam}"] = v
    return out
