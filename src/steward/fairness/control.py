"""The adversary weight chosen during training (`fairness.control = "validation"`): the signal the
controller reads on a held-out slice of the (biased) training data, and its decision rule. Pure
numpy; the trainer callback that feeds it is `steward.classify.monitor.AlphaControl`. Not the default
since v3 (fairness.control "off"): the AUC cost below is measured against the same run's best slice
AUC, which under a raised alpha never reaches the unconstrained model's (qna: slice AUC 0.62-0.76
while alpha went 3 -> 48, against 0.85 for the unconstrained model on the balanced test set), and the
slice's labels carry the training data's label noise; the README's fairness section, v3, has the figures.
`CostGuard` (fairness.control = "guard", at the end of this module) reads the same slice and the same
weighted AUC, but measures the cost against an unconstrained warm-up of the same run and never raises
alpha: it bounds the adversary's cost instead of steering the gap.

The slice carries the training data's own identity-label association, so its plain gaps mix the
model's shortcut with the data's composition. Two corrections make it track the gap on balanced data:

- Importance weights w(g, y) = P(g) P(y) / P(g, y) over the slice (g: a row's identity pattern, as
  for `fairness.loss_weights reweigh`) make the identity independent of the label in the weighted
  slice; every AUC here is weighted by them (`weighted_auc`). The overall AUC then no longer rewards
  the shortcut, so it is also the controller's AUC figure.
- The mean |BPSN gap| and |BNSP gap| over the subgroups has a floor from the slice's size alone (a
  few dozen rows per subgroup). `excess_gap` subtracts that floor: the same figure with the identity
  rows permuted among the rows of the same label (the scores then carry no identity information
  beyond the label: the equalized-odds null), averaged over a few seeded permutations.

The rule (`AlphaController.decide`), one decision every fairness.control_every steps from
fairness.control_warmup on: if the weighted AUC (the mean of the last SMOOTHING evaluations') has
fallen more than fairness.control_max_cost below its running maximum (the AUC cost), halve alpha; otherwise, if the excess gap is above
fairness.control_target, double it; otherwise keep it. Alpha stays within [fairness.alpha / 8,
fairness.control_max_alpha].

The selection (`Selection`): every evaluation of the slice, the decisions' and one after the last
step (which decides nothing: action "end"), is a candidate, rated by its smoothed AUC (the figure the
cost is measured on) and its gap above fairness.control_target (0 when the target is met: below the
target the signal is within its resolution, so a smaller gap there is noise, not progress). At the end,
among the candidates whose smoothed AUC is at most fairness.control_max_cost below the best of the whole
run (the cost in hindsight: an early state measured against the maximum so far would pass a cost check
that the later, better-trained states show it fails), it takes the smallest gap above target, then the
highest smoothed AUC, then the latest. NaN gap or AUC: not a candidate. The trainer callback keeps the
predictor's weights of every candidate that can still be chosen (no other is at least as good on both
figures) and restores the chosen one's after the last step, so whatever path alpha took, the run ends
with the state that met the rule best on the slice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from steward.fairness.weighting import identity_patterns, kamiran_calders_weights

PERMUTATIONS = 8
"""Label-preserving identity permutations that estimate the gap's floor on the slice."""
MIN_ROWS = 5
"""A subgroup needs this many rows of each label in the slice to enter the gap."""
SMOOTHING = 3
"""The AUC the cost is measured on: the mean of the last SMOOTHING evaluations' (a slice of a few
hundred rows, weighted, moves by 0.01-0.04 between evaluations with no change in the model's quality)."""
FLOOR_DIVISOR = 8.0
"""Alpha never goes below fairness.alpha / FLOOR_DIVISOR."""


def weighted_auc(y: np.ndarray, score: np.ndarray, w: np.ndarray) -> float:
    """ROC AUC with row weights: sum of w_i w_j over (positive i, negative j) pairs ranked right (ties
    half) over the sum of w_i w_j; NaN with one class. Equal weights give `metrics.roc_auc`."""
    y = np.asarray(y, dtype=bool)
    w = np.asarray(w, dtype=np.float64)
    if y.all() or not y.any():
        return math.nan
    values, inverse = np.unique(np.asarray(score, dtype=np.float64), return_inverse=True)
    pos = np.bincount(inverse, weights=w * y, minlength=len(values))
    neg = np.bincount(inverse, weights=w * ~y, minlength=len(values))
    below = np.cumsum(neg) - neg  # negative weight strictly below each value
    return float(np.sum(pos * (below + 0.5 * neg)) / (pos.sum() * neg.sum()))


def _mean_gap(y: np.ndarray, score: np.ndarray, ident: np.ndarray, w: np.ndarray, overall: float) -> float:
    gaps = []
    for k in range(ident.shape[1]):
        m = ident[:, k]
        if min((m & y).sum(), (m & ~y).sum()) < MIN_ROWS:
            continue
        bpsn = (~m & y) | (m & ~y)
        bnsp = (~m & ~y) | (m & y)
        gaps += [abs(weighted_auc(y[s], score[s], w[s]) - overall) for s in (bpsn, bnsp)]
    return float(np.mean(gaps)) if gaps else math.nan


def excess_gap(y: np.ndarray, score: np.ndarray, identity: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """(excess gap, weighted overall AUC) of scores on a slice with 0/1 identity matrix [N, K]: the mean
    |BPSN| and |BNSP| gap (importance-weighted AUCs) minus its mean under PERMUTATIONS label-preserving
    permutations of the identity rows (see the module docstring). NaN gap when no subgroup has
    MIN_ROWS rows of each label."""
    y = np.asarray(y, dtype=bool)
    ident = np.asarray(identity).reshape(len(y), -1) >= 0.5
    groups, _ = identity_patterns(ident)
    w = kamiran_calders_weights(groups, y)
    overall = weighted_auc(y, score, w)
    observed = _mean_gap(y, score, ident, w, overall)
    rng = np.random.default_rng(seed)
    null = []
    for _ in range(PERMUTATIONS):
        perm = np.arange(len(y))
        for label in (False, True):
            rows = np.flatnonzero(y == label)
            perm[rows] = rng.permutation(rows)
        null.append(_mean_gap(y, score, ident[perm], w[perm], overall))
    return observed - float(np.mean(null)), overall


@dataclass
class AlphaController:
    """The decision rule of the module docstring. `boost` multiplies fairness.alpha; `best_auc` is the
    running maximum of the weighted AUC (the reference of the AUC cost)."""

    alpha: float
    target: float
    max_cost: float
    max_alpha: float
    boost: float = 1.0
    best_auc: float = -math.inf
    decisions: list[dict] = field(default_factory=list)

    def decide(self, step: int, gap: float, auc: float, last: bool = False) -> str:
        """'lower', 'raise' or 'keep' after one evaluation of the slice ('end' with `last`: the evaluation
        after the last step, which only records the gap and cost for the selection); updates boost and
        best_auc and appends the record (step, gap, auc, cost, action, alpha)."""
        smooth, cost = self._cost(auc)
        low, high = self.alpha / FLOOR_DIVISOR, max(self.alpha, self.max_alpha)
        now = self.alpha * self.boost
        if last:
            action, new = "end", now
        elif cost > self.max_cost:
            action, new = "lower", max(low, now / 2)
        elif gap > self.target:
            action, new = "raise", min(high, now * 2)
        else:
            action, new = "keep", now
        self.boost = new / self.alpha if self.alpha else 1.0
        self.decisions.append({"step": int(step), "gap": gap, "auc": auc, "smooth_auc": smooth,
                               "cost": cost, "action": action, "alpha": new})
        return action

    def _cost(self, auc: float) -> tuple[float, float]:
        """This evaluation's smoothed AUC (the mean of the last SMOOTHING evaluations', this one included)
        and AUC cost: the running maximum of the smoothed AUC (updated) minus the smoothed AUC."""
        recent = [d["auc"] for d in self.decisions[-(SMOOTHING - 1):]] + [auc] if SMOOTHING > 1 else [auc]
        smooth = float(np.nanmean(recent)) if not all(math.isnan(a) for a in recent) else math.nan
        self.best_auc = max(self.best_auc, smooth) if not math.isnan(smooth) else self.best_auc
        return smooth, self.best_auc - smooth

    def state_dict(self) -> dict:
        return {"boost": self.boost, "best_auc": self.best_auc, "decisions": list(self.decisions)}

    def load_state_dict(self, state: dict) -> None:
        self.boost, self.best_auc = float(state["boost"]), float(state["best_auc"])
        self.decisions = list(state["decisions"])


@dataclass
class Selection:
    """The rule of the module docstring. `front` holds the records (`AlphaController` decisions) that
    can still be chosen: those no later record matches or beats on both the gap above target and the
    smoothed AUC."""

    target: float
    max_cost: float
    front: list[dict] = field(default_factory=list)

    def _key(self, record: dict) -> tuple[float, float]:
        return max(record["gap"] - self.target, 0.0), record["smooth_auc"]

    def consider(self, record: dict) -> bool:
        """Whether `record` joins the candidates (the caller keeps its weights); drops those it beats."""
        if math.isnan(record["gap"]) or math.isnan(record["smooth_auc"]):
            return False
        above, smooth = self._key(record)
        for other in self.front:
            o_above, o_smooth = self._key(other)
            if o_above <= above and o_smooth >= smooth and (o_above, o_smooth) != (above, smooth):
                return False
        self.front = [o for o in self.front if not (above <= self._key(o)[0] and smooth >= self._key(o)[1])]
        self.front.append(dict(record))
        return True

    def steps(self) -> set[int]:
        return {r["step"] for r in self.front}

    def choice(self) -> dict | None:
        """The chosen record (None before any candidate)."""
        if not self.front:
            return None
        best = max(r["smooth_auc"] for r in self.front)
        eligible = [r for r in self.front if r["smooth_auc"] >= best - self.max_cost]
        return min(eligible, key=lambda r: (self._key(r)[0], -r["smooth_auc"], -r["step"]))


@dataclass
class CostGuard:
    """fairness.control = "guard": a bound on the adversary's AUC cost that holds by construction.

    Until step `warmup` the predictor trains without the adversary's push (alpha 0, no projection; the
    adversary itself learns meanwhile), so the evaluations up to then score the unconstrained model.
    Its *reference* is the highest weighted slice AUC of those evaluations (up to and at `warmup`:
    the model is still improving, so the latest is usually the highest; a warm-up model is a lower
    bound on what unconstrained training reaches by the end, so the reference errs towards the lax
    side and the maximum, not a mean over earlier and weaker states, keeps that small). From
    `warmup` on the adversary weighs fairness.alpha; each evaluation's cost is the reference minus its
    smoothed AUC (the mean of the last SMOOTHING evaluations' from the warm-up's end on), and a cost
    above `max_cost` halves alpha (never below alpha / FLOOR_DIVISOR). The cost is measured against a
    model the same run trained without the adversary, on rows it never trained on, with the identity
    made independent of the label (`excess_gap`'s weights), not against the run's own best under the
    adversary (`AlphaController`): a run whose AUC the adversary drags down from the start cannot
    lower its own reference. The selection (`GuardSelection`) returns the latest state within the
    budget, the warm-up's at worst.

    The same interface as `AlphaController` (decide, boost, decisions, state_dict), so
    `steward.classify.monitor.AlphaControl` runs either."""

    alpha: float
    max_cost: float
    warmup: int
    boost: float = 0.0
    reference: float = math.nan
    decisions: list[dict] = field(default_factory=list)

    def decide(self, step: int, gap: float, auc: float, last: bool = False) -> str:
        """'warmup' (before `warmup`), 'start' (at it: the reference is fixed, alpha switched on),
        'lower' (cost above max_cost), 'keep', or 'end' (with `last`: records only); updates boost
        and appends the record (step, gap, auc, smooth_auc, cost, action, alpha)."""
        # smoothed over the evaluations from the warm-up's end on only (a mean with the warm-up's
        # earlier, weaker states would read as a cost)
        since = [d["auc"] for d in self.decisions if d["action"] != "warmup"][-(SMOOTHING - 1):] + [auc]
        smooth = float(np.nanmean(since)) if not all(math.isnan(a) for a in since) else math.nan
        if step < self.warmup and not last:
            action, cost = "warmup", 0.0
        elif math.isnan(self.reference):
            warm = [d["auc"] for d in self.decisions if d["action"] == "warmup"] + [auc]
            self.reference = max((a for a in warm if not math.isnan(a)), default=math.nan)
            cost = self.reference - smooth if not math.isnan(smooth) else math.inf
            action, self.boost = ("end" if last else "start"), 1.0
        else:
            cost = self.reference - smooth if not math.isnan(smooth) else math.inf
            if last:
                action = "end"
            elif cost > self.max_cost:
                action, self.boost = "lower", max(1.0 / FLOOR_DIVISOR, self.boost / 2)
            else:
                action = "keep"
        self.decisions.append({"step": int(step), "gap": gap, "auc": auc, "smooth_auc": smooth, "cost": cost,
                               "action": action, "alpha": self.alpha * self.boost})
        return action

    def state_dict(self) -> dict:
        return {"boost": self.boost, "reference": self.reference, "decisions": list(self.decisions)}

    def load_state_dict(self, state: dict) -> None:
        self.boost, self.reference = float(state["boost"]), float(state["reference"])
        self.decisions = list(state["decisions"])


@dataclass
class GuardSelection:
    """The state a guarded run ends with: the latest evaluation from the warm-up's end on ('start',
    'keep', 'lower', 'end') whose cost is within `max_cost`; the warm-up's end ('start', whatever its
    cost: the unconstrained model) at worst. Only the latest such record is kept (`front`), so the
    caller holds one copy of the weights."""

    max_cost: float
    front: list[dict] = field(default_factory=list)

    def consider(self, record: dict) -> bool:
        within = record["action"] != "warmup" and record["cost"] <= self.max_cost  # False for a NaN cost
        if record["action"] != "start" and not within:
            return False
        self.front = [dict(record)]
        return True

    def steps(self) -> set[int]:
        return {r["step"] for r in self.front}

    def choice(self) -> dict | None:
        return self.front[-1] if self.front else None
