"""Fitting the cost model's constants (`kernels.Constants`) to published runs, and the errors it makes on
runs it was not fitted to.

The fit: minimise the sum of squared log(predicted / published) over the training runs, each source
weighted equally (a row's weight 1 / sqrt(rows of its source)), by Levenberg-Marquardt on the constants
in a transformed space (the log of each positive constant, the logit of `overlap` and `contention`), with a small ridge
(RIDGE) towards the starting point so that a constant no training row informs stays where it started.
Deterministic: the same rows give the same constants.

Leave-one-source-out: for each source, fit on the other sources' rows only, then predict that source's
rows. Those errors are the model's out-of-sample errors (`loso`); the error band `steward plan` and
`steward simulate` print is their central 90% (`band`, stored as `kernels.BAND`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from steward.planning.cost import Calibration, predict
from steward.planning.kernels import FITTED, NAMES, Constants, ErrorBand, from_vector

START = Constants(gemm=0.8, gemm_half=100.0, attention=0.6, elementwise=4.0, score_passes=8.0, overlap=0.8,
                  contention=0.2, compiled_elementwise=0.5, attention_hopper=0.5, layer_overhead=1e-4, collective_half=FITTED.collective_half)
"""Where every fit starts (rough physical values: 80% of the large-GEMM rate, flash attention at 60% of
it and at half that on Hopper (FlashAttention-3's 35% against 70%), 8 passes over the scores, a fifth of a
hidden collective's time lost to contention, half the element-wise traffic under torch.compile, 0.1 ms
per block); also the ridge's anchor."""
RIDGE = 0.01
"""Weight of the ridge on each transformed constant's distance from START (against the per-source
weights of the residuals, which sum to one per source)."""
ITERATIONS = 60
LOGIT = ("overlap", "contention")
"""The constants that are fractions (fitted as logits); the others are positive (fitted as logs)."""


def _to_u(c: Constants) -> np.ndarray:
    out = []
    for name in NAMES:
        v = getattr(c, name)
        if name in LOGIT:
            v = min(max(v, 1e-6), 1 - 1e-6)
            out.append(math.log(v / (1 - v)))
        else:
            out.append(math.log(max(v, 1e-12)))
    return np.array(out)


def _from_u(u: np.ndarray) -> Constants:
    values = [1 / (1 + math.exp(-x)) if name in LOGIT else math.exp(x) for name, x in zip(NAMES, u)]
    return from_vector(values, START)


@dataclass
class Case:
    """One corpus run, prepared once: its request, layout and published figure."""

    run: dict[str, Any]
    req: Any
    layout: Any
    weight: float


def cases(runs: list[dict[str, Any]]) -> list[Case]:
    from steward.planning.published import request_for

    counts: dict[str, int] = {}
    for r in runs:
        counts[r["source"]] = counts.get(r["source"], 0) + 1
    out = []
    for r in runs:
        req, lay = request_for(r)
        out.append(Case(r, req, lay, 1 / math.sqrt(counts[r["source"]])))
    return out


def predicted(case: Case, c: Constants) -> float:
    """The run's figure as the model predicts it with constants `c`."""
    from steward.planning.published import predicted_value

    pred = predict(case.req, case.layout, Calibration(constants=c))
    return predicted_value(case.run, case.req, case.layout, pred)


def _residuals(u: np.ndarray, train: list[Case], u0: np.ndarray) -> np.ndarray:
    c = _from_u(u)
    r = [cs.weight * math.log(predicted(cs, c) / cs.run["published"]) for cs in train]
    return np.concatenate([np.array(r), math.sqrt(RIDGE) * (u - u0)])


def fit(train: list[Case]) -> Constants:
    """The constants that best explain `train` (Levenberg-Marquardt; see the module docstring)."""
    u0 = _to_u(START)
    u, lam = u0.copy(), 1e-2
    res = _residuals(u, train, u0)
    cost = float(res @ res)
    for _ in range(ITERATIONS):
        jac = np.empty((len(res), len(u)))
        for j in range(len(u)):
            du = np.zeros_like(u)
            du[j] = 1e-4
            jac[:, j] = (_residuals(u + du, train, u0) - res) / 1e-4
        jtj, jtr = jac.T @ jac, jac.T @ res
        improved = False
        while lam < 1e8:
            step = np.linalg.solve(jtj + lam * np.diag(np.diag(jtj) + 1e-9), -jtr)
            new = _residuals(u + step, train, u0)
            new_cost = float(new @ new)
            if new_cost < cost:
                u, res, lam, improved = u + step, new, max(lam / 3, 1e-7), True
                break
            lam *= 4
        if not improved or cost - new_cost < 1e-10 * max(cost, 1e-12):
            cost = min(cost, new_cost) if improved else cost
            break
        cost = new_cost
    return _from_u(u)


def row(case: Case, c: Constants) -> dict[str, Any]:
    value = predicted(case, c)
    return {"id": case.run["id"], "source": case.run["source"], "metric": case.run["metric"],
            "published": case.run["published"], "predicted": value, "error": value / case.run["published"] - 1}


def loso(all_cases: list[Case]) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]]]:
    """Leave-one-source-out rows (each predicted by constants fitted without its source) and each
    source's fitted constants."""
    sources = sorted({cs.run["source"] for cs in all_cases})
    rows, constants = {}, {}
    for s in sources:
        c = fit([cs for cs in all_cases if cs.run["source"] != s])
        constants[s] = c.to_dict()
        for cs in all_cases:
            if cs.run["source"] == s:
                rows[cs.run["id"]] = row(cs, c)
    return [rows[cs.run["id"]] for cs in all_cases], constants


def band(rows: list[dict[str, Any]], coverage: float = 0.9) -> ErrorBand:
    """The error band of leave-one-source-out rows: the central `coverage` of their errors (linear
    interpolation between order statistics, numpy's default percentile)."""
    errors = np.array([r["error"] for r in rows])
    tail = 100 * (1 - coverage) / 2
    return ErrorBand(lo=float(np.percentile(errors, tail)), hi=float(np.percentile(errors, 100 - tail)),
                     coverage=coverage, runs=len(rows))
