"""Adversarial debiasing (Zhang, Lemoine and Mitchell 2018, "Mitigating unwanted biases with
adversarial learning").

An adversary A predicts the protected attributes (every subgroup of every family at once, one
logit each; with the target "subgroups_and_several", the default, also whether the row mentions
several subgroups, `adversary_targets`) from what the predictor P exposes:

- "representation": the pooled representation z (the decoder's features before the head);
- "demographic_parity": the prediction p;
- "equalized_odds": p together with the label y, as [p, p*y, p*(1-y)] (the paper's section 4);
- "equal_opportunity": p on the rows labelled non-toxic (y = 0) only, the adversary's loss taken
  over those rows: identity independent of the prediction among the rows whose label is the
  favourable outcome (Hardt et al. 2016's equality of opportunity; the paper's section 4 notes
  the one-label case). An equalized-odds adversary conditions on the training label as given:
  where a group's friendly rows were labelled toxic (label noise by group), even a prediction that
  follows the text differs by group among the rows labelled toxic, and that adversary pushes
  those rows' scores up; rows labelled non-toxic are the ones such noise leaves clean. Measured
  (README, "Why the adversary did little"): that effect is real but small, and on the tuning
  sources this variant removed almost nothing, so it is not the default.

With fairness.adversary_direction "association" (`Adversary.orient`; not the default) each output's
weights on the prediction keep the sign of its target's association with the toxic label in the
training split, so the adversary detects a group only by scores moved the way a shortcut on that
group moves them (up for a group named more often in toxic rows), in every label cell; with
"association_label" the equalized-odds adversary also reads the label itself (a last input column
with a free weight, `reads_label`), so that the label cells' base rates do not go through the
oriented weights. Without that column a linear equalized-odds adversary learns how often a group is
named in each label cell through the prediction's weights (the label cells' mean scores differ), and
its push then lowers every row of a group named more often among toxic rows, a demographic-parity-
like push that the default adversary has too. What orientation buys under each way bias enters: under selection, co-occurrence and imbalance a shortcut moves the group's scores the
oriented way in both label cells, and both are used, as by the unconstrained adversary; where a
group's labels were flipped (friendly -> toxic, or toxic -> friendly), the flipped rows in the
noisy cell make a text-following score differ the *other* way, which the oriented adversary cannot
read, so it does not push that cell towards the shortcut, and the clean cell is used as before.

The prediction p is one of (`INPUTS`):

- "standardized_logit" (the default): the logit standardised over the batch, (logit - m) / s,
  with the batch's mean m and standard deviation s taken as constants (no gradient through them)
  and, under data parallelism or gradient accumulation, over the *global* batch;
- "probability": sigmoid(logit), the paper's input.

Why not the paper's: with a bounded input the predictor has a cheap way to hurt the adversary
without removing any bias. It squeezes its logits into the sigmoid's flat tail (measured: mean
logits -1.53 / +2.27 for non-toxic / toxic without the adversary, -2.62 / -1.91 with it), where
the probability varies little, so the adversary's detection and its push both fade while the
*ranking* the AUC gaps measure keeps the identity offsets. The standardised logit is invariant to
rescaling of the logits by a positive factor and to shifting them (as long as their spread stays
above STD_FLOOR, far below a trained model's), so that escape is closed: to hurt the adversary the
predictor has to make its ranking independent of the subgroup. It is unbounded only in the
batch's units (values beyond a few standard deviations are rare by construction).

The adversary minimises its loss L_A. The predictor's weights W move along

    g = grad_W L_P - proj_{grad_W L_A} grad_W L_P - alpha * grad_W L_A

(the paper's equation for the predictor update, over the *full* parameter vector: the projection
removes the part of the predictor's step that would help the adversary, the last term hurts it).
`alpha` follows a schedule: constant, or alpha * sqrt(t) as the paper suggests for convergence.

Under data parallelism both gradients are the global (all-reduced) ones. With FSDP2 they are
sharded DTensors: the dot products are summed locally and all-reduced over the shard dimension of
the mesh (`grad_dot`), so every rank applies exactly the single-process update to its shard.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from steward.fairness.metrics import FairnessError
from steward.fairness.robust_loss import RowLoss
from steward.models.gpt import upcast

VARIANTS = ("representation", "demographic_parity", "equalized_odds", "equal_opportunity")
INPUTS = ("standardized_logit", "probability")
SCHEDULES = ("constant", "sqrt")
TARGETS = ("subgroups", "subgroups_and_several", "subgroups_families_several")
"""What the adversary predicts (fairness.adversary_target, `adversary_targets`)."""
CELLS = ("all", "clean")
"""Which label cells each of the adversary's outputs learns from (fairness.adversary_cells,
`Adversary.use_clean_cells`)."""
DIRECTIONS = ("both", "association", "association_label")
"""Which way each of the adversary's outputs may read the prediction (fairness.adversary_direction,
`association_signs`, `Adversary.orient`)."""
RowWeights = Callable[[Sequence[dict[str, torch.Tensor]]], Sequence[torch.Tensor]]
"""Given the micro-batches of a step, one weight per row of each (see `predictor_backward`)."""
STD_FLOOR = 0.1
"""Smallest batch standard deviation of the logits "standardized_logit" divides by. At initialisation
the logits barely differ (std ~0.02 for a fresh head) and dividing by that would magnify rounding
noise fifty-fold; trained logits spread over several units, where the floor never acts."""
ADAM_EPS = 1e-6
"""Adam's eps for the adversary (every variant and input). Some of its gradient components are
rounding noise: a subgroup absent from the batch, whose gradient on the standardised input's first
column is its base rate times that column's batch sum, zero up to rounding (~1e-9). With Adam's
default 1e-8 the first steps turn such noise into steps of a sizeable fraction of the learning
rate, different in every parallel layout. Real adversary gradients are 1e-3 and up."""


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


def grad_dot(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> torch.Tensor:
    """sum_i <xs[i], ys[i]> over the whole (possibly sharded) parameter vector, as a float64 scalar.

    Plain tensors (one process, DDP: gradients already all-reduced) add up locally. DTensors (FSDP2,
    HSDP) add up their local shards, then the partial sums are all-reduced over the mesh dimensions
    the tensors are sharded on (not the replicate dimension, where every rank holds the same shard)."""
    plain = torch.zeros((), dtype=torch.float64, device=_local(xs[0]).device) if xs else torch.zeros((), dtype=torch.float64)
    sharded: dict[tuple[int, tuple[int, ...]], tuple[Any, torch.Tensor]] = {}
    for x, y in zip(xs, ys):
        part = torch.sum(_local(x).double() * _local(y).double())
        if hasattr(x, "device_mesh"):
            mesh = x.device_mesh
            dims = tuple(i for i, p in enumerate(x.placements) if p.is_shard())
            if dims:
                key = (id(mesh), dims)
                prev = sharded.get(key)
                sharded[key] = (mesh, part if prev is None else prev[1] + part)
                continue
        plain = plain + part
    total = plain
    for (_, dims), (mesh, part) in sharded.items():
        for d in dims:
            dist.all_reduce(part, group=mesh.get_group(d))
        total = total + part.to(total.device)
    return total


def projected_gradients(
    grad_p: Sequence[torch.Tensor], grad_a: Sequence[torch.Tensor], alpha: float, eps: float = 1e-30,
) -> list[torch.Tensor]:
    """grad_p - (<grad_p, grad_a> / <grad_a, grad_a>) grad_a - alpha * grad_a, parameter by parameter.

    With grad_a = 0 (an adversary that has nothing to say yet) this is grad_p."""
    pa = grad_dot(grad_p, grad_a)
    aa = grad_dot(grad_a, grad_a)
    coef = float(pa / aa) if float(aa) > eps else 0.0
    return [gp - (coef + alpha) * ga for gp, ga in zip(grad_p, grad_a)]


def alpha_at(alpha: float, schedule: str, step: int) -> float:
    """The adversary weight at optimizer step `step` (1-based)."""
    if schedule == "constant":
        return alpha
    if schedule == "sqrt":
        return alpha * math.sqrt(max(step, 1))
    raise FairnessError(f"fairness.alpha_schedule: must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def logit_stats(logits: Sequence[torch.Tensor], reduce: bool = True) -> torch.Tensor:
    """[mean, standard deviation] of the logits of every micro-batch given and, with `reduce` and a
    process group up, of every rank (population std over the global batch), as constants: what
    "standardized_logit" standardises with, the same numbers in one process and under DDP/FSDP2.
    `reduce` is a collective: every rank must call it."""
    dtype = upcast(logits[0]).dtype
    flat = torch.cat([t.detach().reshape(-1) for t in logits]).double()
    sums = torch.stack([flat.sum(), (flat * flat).sum(), torch.tensor(float(flat.numel()), dtype=torch.float64,
                                                                         device=flat.device)])
    if reduce and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(sums)
    mean = sums[0] / sums[2]
    var = (sums[1] / sums[2] - mean * mean).clamp_min(0.0)
    return torch.stack([mean, var.sqrt()]).to(dtype)


def adversary_inputs(variant: str, z: torch.Tensor | None, logit: torch.Tensor, y: torch.Tensor,
                     kind: str = "standardized_logit", stats: torch.Tensor | None = None,
                     with_label: bool = False) -> torch.Tensor:
    """What the adversary sees for `variant` (see the module docstring). For kind
    "standardized_logit", `stats` is `logit_stats(...)` of the whole (global) batch; None: this
    batch's own, not reduced across ranks (one process, no accumulation). `with_label`: an
    "equalized_odds" adversary also reads the label itself, as a last column (`Adversary.orient`)."""
    if variant == "representation":
        assert z is not None
        return z
    if variant not in VARIANTS:
        raise FairnessError(f"fairness.adversary: must be none or one of {', '.join(VARIANTS)}, got {variant!r}")
    if kind == "standardized_logit":
        st = logit_stats([logit], reduce=False) if stats is None else stats
        p = ((upcast(logit) - st[0]) / st[1].clamp_min(STD_FLOOR)).reshape(-1, 1)
    elif kind == "probability":
        p = torch.sigmoid(upcast(logit)).reshape(-1, 1)
    else:
        raise FairnessError(f"fairness.adversary_input: must be one of {', '.join(INPUTS)}, got {kind!r}")
    if variant == "demographic_parity":
        return p
    yy = y.reshape(-1, 1).to(p.dtype)
    if variant == "equal_opportunity":
        return p * (1 - yy)
    return torch.cat([p, p * yy, p * (1 - yy), yy] if with_label else [p, p * yy, p * (1 - yy)], dim=1)


def reads_label(variant: str, direction: str) -> bool:
    """Whether the adversary of `variant` reads the label as an input column of its own: the
    equalized-odds one with fairness.adversary_direction "association_label" (`Adversary.orient`)."""
    return variant == "equalized_odds" and direction == "association_label"


def adversary_input_dim(variant: str, feature_dim: int, direction: str = "both") -> int:
    dims = {"representation": feature_dim, "demographic_parity": 1, "equalized_odds": 3, "equal_opportunity": 1}
    return dims[variant] + reads_label(variant, direction)


def adversary_targets(identity: np.ndarray, target: str, family_sizes: Sequence[int] = ()) -> np.ndarray:
    """The adversary's targets from the 0/1 identity matrix [N, K] (columns grouped by family, of
    `family_sizes` columns each, in order): the subgroups ("subgroups"); with "subgroups_and_several"
    one more column, 1 where the row mentions two or more subgroups; with "subgroups_families_several"
    also one column per family, 1 where the row mentions any of its subgroups, before that one.

    Why: a linear head per subgroup checks that the prediction is independent of each subgroup's
    membership (given the label) one subgroup at a time, not of the identity *pattern*. A shortcut on
    another function of the memberships passes those checks: in the test bed's `terraces` source the
    training posts that name two fan groups are all toxic, so a model learns "two groups named ->
    toxic"; the per-subgroup heads can be satisfied by lowering the (targeted) second group's own
    tokens while the "two groups" cue stays, and on balanced data, where any two groups are named
    whatever the label, every subgroup's gap grows. Likewise a family named in its own way (pronouns,
    "the lads") carries a shortcut shared by its subgroups, which each subgroup's head sees only in
    its own few rows. Equalized odds with respect to the identity pattern requires independence of
    every function of it; the families mentioned and whether several subgroups are are the simplest
    ones beyond the marginals."""
    ident = np.asarray(identity, dtype=np.float32)
    if target == "subgroups":
        return ident
    if target not in TARGETS:
        raise FairnessError(f"fairness.adversary_target: must be one of {', '.join(TARGETS)}, got {target!r}")
    named = ident >= 0.5
    cols = [ident]
    if target == "subgroups_families_several":
        if sum(family_sizes) != ident.shape[1]:
            raise FairnessError(f"adversary_targets: family sizes {list(family_sizes)} do not add up to the "
                                f"{ident.shape[1]} identity columns")
        bounds = np.cumsum([0, *family_sizes])
        cols.append(np.stack([named[:, a:b].any(axis=1) for a, b in zip(bounds[:-1], bounds[1:])], 1))
    cols.append(named.sum(axis=1, keepdims=True) >= 2)
    return np.concatenate([c.astype(np.float32) for c in cols], axis=1)


def association_signs(target: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per column of the adversary's 0/1 target matrix [N, K'] (`adversary_targets`), the sign of
    P(toxic | the row has it) - P(toxic | it has not) over the training rows: +1 where the target goes
    with the toxic label, -1 where with the non-toxic one, 0 where a side has no rows or the rates are
    equal (the adversary then cannot read that column at all). The direction in which a model that
    learns the group as a shortcut moves that group's scores, whatever put the association there:
    selection, co-occurrence, or labels flipped by group (`Adversary.orient`)."""
    t = np.asarray(target, dtype=np.float64) >= 0.5
    y = np.asarray(labels, dtype=np.float64).reshape(-1, 1) >= 0.5
    n_in, n_out = t.sum(0), (~t).sum(0)
    rate_in = (t & y).sum(0) / np.maximum(n_in, 1)
    rate_out = (~t & y).sum(0) / np.maximum(n_out, 1)
    return np.where((n_in > 0) & (n_out > 0), np.sign(rate_in - rate_out), 0.0).astype(np.float32)


def adversary_rows(variant: str, y: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray | None:
    """The rows the adversary learns from, as a 0/1 weight per row (None: all): for
    "equal_opportunity" the rows labelled non-toxic."""
    return 1 - y if variant == "equal_opportunity" else None


def learning_rows(adversary: nn.Module, variant: str, y: torch.Tensor) -> torch.Tensor | None:
    """The 0/1 weights of the rows the adversary's outputs learn from: per row and output once
    `Adversary.use_clean_cells` has set its cells (`Adversary.cell_rows`), else per row (`adversary_rows`)."""
    if getattr(adversary, "cell_signs", None) is not None:
        return adversary.cell_rows(y)
    return adversary_rows(variant, y)


class Adversary(nn.Module):
    """Logits for every protected subgroup; linear (hidden = 0) or one hidden ReLU layer."""

    def __init__(self, in_dim: int, num_groups: int, hidden: int = 0):
        super().__init__()
        if hidden:
            self.net: nn.Module = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_groups))
        else:
            self.net = nn.Linear(in_dim, num_groups)
        self.signs: torch.Tensor | None = None
        self.cell_signs: torch.Tensor | None = None
        """Per output, the sign of its target's association with the toxic label (`use_clean_cells`);
        None: every output learns from every row."""
        self.label_column = False
        """Whether the input's last column is the label (`orient`; `adversary_inputs` with_label)."""

    @torch.no_grad()
    def orient(self, target: np.ndarray, labels: np.ndarray, label_column: bool = False) -> None:
        """fairness.adversary_direction "association" / "association_label": from now on output k's
        weights on the prediction keep the sign of target k's association with the toxic label in the
        training split (`association_signs`; 0: zero weights), so it can tell its group from the others only by the
        group's scores being *higher* (sign +1) or *lower* (-1) than the others' in the same label
        cell, never the other way; `constrain_` keeps it after every optimizer step (projected
        gradient descent).

        Why: a shortcut on a group moves all its rows' scores one way, the way the group's association
        with the label points, whatever made the association (selection, co-occurrence, or labels
        flipped by group). Where a group's friendly rows were labelled toxic, a score that follows the
        text is *lower* for that group among the toxic-labelled rows (its flipped rows read friendly),
        and an unconstrained equalized-odds adversary reads that and pushes the group's rows up,
        towards the shortcut; likewise for toxic rows labelled friendly, the other way round. Oriented,
        it finds nothing to read in such a cell and pushes nowhere there, while a shortcut shows in
        every cell, in the oriented direction, and is pushed back as before.

        `label_column` (the equalized-odds adversary with "association_label", `reads_label`): the
        input's last column is the label, with a free weight, started with the bias at each target's
        log-odds among the rows labelled non-toxic and the label's weight at the difference to those
        labelled toxic. Without it a linear adversary can learn how often a group is named in each
        label cell only through the prediction's weights (the label cells' mean scores differ), and
        oriented weights then push the group's scores past the others' to encode those base rates
        (in a linear model with label noise by group the group's weight ends below zero). On the
        test bed that push is what removed most of a label-noise shortcut (README, fairness, v7:
        without it the oriented adversary removed nothing on `bouldering`). Needs a linear adversary
        (a hidden layer has no sign to keep)."""
        if isinstance(self.net, nn.Sequential):
            raise FairnessError("fairness.adversary_direction: association needs a linear adversary; set "
                                "--fairness.adversary_hidden 0 or --fairness.adversary_direction both")
        self.signs = torch.as_tensor(association_signs(target, labels)).reshape(-1, 1)
        self.label_column = label_column
        if label_column:
            t = np.asarray(target, dtype=np.float64)
            y = np.asarray(labels, dtype=np.float64) >= 0.5

            def logodds(rows: np.ndarray) -> np.ndarray:  # each target's log-odds among `rows` (all: none)
                rate = np.clip(t[rows].mean(0) if rows.any() else t.mean(0), 1e-4, 1 - 1e-4)
                return np.log(rate / (1 - rate))

            friendly, toxic = logodds(~y), logodds(y)
            self.net.bias.copy_(torch.as_tensor(friendly).to(self.net.bias))
            self.net.weight.zero_()
            self.net.weight[:, -1] = torch.as_tensor(toxic - friendly).to(self.net.weight)
        self.constrain_()

    @torch.no_grad()
    def constrain_(self) -> None:
        """Keep each output's weights on the prediction on its side of zero (`orient`); the label
        column's stay free. Nothing when not oriented."""
        if self.signs is None:
            return
        w = self.net.weight[:, :-1] if self.label_column else self.net.weight
        s = self.signs.to(w)
        w.copy_(s * (s * w).clamp_min(0.0))

    @torch.no_grad()
    def use_clean_cells(self, target: np.ndarray, labels: np.ndarray) -> None:
        """fairness.adversary_cells "clean": from now on output k learns only from the rows of the label
        cell opposite its target's association with the toxic label in the training split
        (`association_signs`): the rows labelled non-toxic for a target named more often in toxic rows,
        those labelled toxic for one named more often in non-toxic rows, every row where there is no
        association (`cell_rows`); its bias restarts at its target's rate in that cell.

        Why: that cell is the one every way an association gets into the labels leaves clean. Labels
        flipped friendly -> toxic for a group raise its association and put friendly-looking rows only
        into its toxic cell; flipped toxic -> friendly lower it and dirty only its non-toxic cell; under
        selection, co-occurrence and imbalance both cells are clean. A model that scores the text is
        then independent of the group given the label in that cell under every one of them, while a
        shortcut on the group moves the group's scores there as in every cell. An equalized-odds
        adversary that also reads the noisy cell finds the flipped rows' text-following scores
        differing the other way and pushes that cell towards the shortcut, which cancels its push on
        the clean one. Not the default: screened for v8 and not adopted (README, fairness, "A v8 attempt")."""
        t = np.asarray(target, dtype=np.float64)
        self.cell_signs = torch.as_tensor(association_signs(t, labels))
        self.start_at_prior(t, self.cell_rows(torch.as_tensor(np.asarray(labels, dtype=np.float64))).numpy())

    def cell_rows(self, y: torch.Tensor) -> torch.Tensor:
        """A 0/1 weight per row and output [B, K'] (`use_clean_cells`): 1 where the row's label is its
        output's clean cell."""
        assert self.cell_signs is not None
        yy = y.reshape(-1, 1).double()
        s = self.cell_signs.reshape(1, -1).to(yy)
        return torch.where(s > 0, 1 - yy, torch.where(s < 0, yy, torch.ones_like(yy)))

    @torch.no_grad()
    def start_at_prior(self, identity: torch.Tensor | np.ndarray, rows: torch.Tensor | np.ndarray | None = None,
                       weights: torch.Tensor | np.ndarray | None = None) -> None:
        """Set the output bias to the log-odds of each subgroup's share of `identity` [N, K] (of the
        rows with `rows` = 1 when given, `adversary_rows`; [N, K] rows: per output, `cell_rows`), and the
        output weights to zero, so the adversary starts at the base rates: its loss is then the
        prior's entropy and its gradient says only what the predictor reveals beyond the base rates.
        From a random start, most of its early gradient (and so of the predictor's adversary term)
        is about learning those rates, which pushes every prediction alike instead of removing a bias.
        `weights` (one per row; fairness.adversary_weights "rows"): the shares are weighted, the rates
        of the weighted rows the adversary's loss is taken on."""
        ident = np.asarray(identity, dtype=np.float64)
        w = None if rows is None else np.asarray(rows, dtype=np.float64)
        if weights is not None:
            mask = np.ones_like(ident) if w is None else (w > 0.5).reshape(len(ident), -1) * np.ones_like(ident)
            mw = mask * np.asarray(weights, dtype=np.float64).reshape(-1, 1)
            rates = torch.as_tensor((ident * mw).sum(0) / np.maximum(mw.sum(0), 1e-12))
        elif w is not None and w.ndim == 2:  # per row and output (`cell_rows`)
            rates = torch.as_tensor((ident * (w > 0.5)).sum(0) / np.maximum((w > 0.5).sum(0), 1))
        else:
            rates = torch.as_tensor(ident if w is None else ident[w > 0.5]).mean(0)
        rates = rates.clamp(1e-4, 1 - 1e-4)
        last = self.net[-1] if isinstance(self.net, nn.Sequential) else self.net
        last.bias.copy_(torch.log(rates / (1 - rates)).to(last.bias))
        last.weight.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(next(self.parameters()).dtype))


def adversary_loss(logits: torch.Tensor, identity: torch.Tensor, rows: torch.Tensor | None = None,
                   weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy over examples and subgroups (multi-label: families at once); with
    `rows` (a 0/1 weight per example, `adversary_rows`, or per example and output [B, K'],
    `Adversary.cell_rows`) the others count zero, and the mean is still over every example, so every
    micro-batch and rank weighs its rows alike. `weights` (one per example; fairness.adversary_weights
    "rows": the predictor's row weights) multiply each example's terms, the mean taken as for the
    predictor's weighted loss (`predictor_backward`): the mean of weight * cross-entropy."""
    if rows is None and weights is None:
        return F.binary_cross_entropy_with_logits(logits, identity.to(logits.dtype))
    bce = F.binary_cross_entropy_with_logits(logits, identity.to(logits.dtype), reduction="none")
    if rows is not None:
        bce = bce * rows.reshape(len(bce), -1).to(bce.dtype)
    if weights is not None:
        bce = bce * weights.reshape(len(bce), 1).to(bce.dtype)
    return bce.mean()


def all_reduce_grads_mean(params: Sequence[nn.Parameter]) -> None:
    """Average plain (unsharded, un-wrapped) gradients across all ranks: the adversary's, which no DDP
    or FSDP wrapper syncs."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view_as(g))
        offset += g.numel()


def adversarial_step(forward: Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor | None, torch.Tensor]],
                     micro: Sequence[dict[str, torch.Tensor]], predictor_params: Sequence[nn.Parameter],
                     adversary: nn.Module, variant: str, alpha: float, adversary_input: str = "standardized_logit", *,
                     sync: Callable[[int], AbstractContextManager] | None = None, reuse: bool = False,
                     distributed: bool = True, row_weights: RowWeights | None = None,
                     project: bool = True, weigh_adversary: bool = False,
                     row_loss: RowLoss | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of one projected update (see the module docstring) over the micro-batches `micro`
    of one batch: the projected predictor gradient is left in the predictor's .grad, the adversary's
    gradient in its .grad. The one debiasing step of the classifier trainer (any data-parallel layout,
    gradient accumulation) and of the standalone estimator (`steward.fairness.estimator`).

    `forward(b)` -> (pooled features or None, logits [B]) of micro-batch `b` (a dict with "y" [B] and
    "identity" [B, K]; the adversary predicts "adversary_target" [B, K'] instead where the batch
    carries it, `adversary_targets`). `sync(i)` is the context for micro-batch i's forward and backward (a wrapper's
    gradient all-reduce on the last one only); None: no wrapper. `reuse`: the predictor's loss reuses
    the adversary pass's forward (its graph kept for a second backward): for one process with one
    micro-batch and nothing recomputed; elsewhere each backward must follow its own forward (DDP/FSDP),
    a selectively checkpointed region allows one backward, and keeping every micro-batch's graph would
    multiply the activation memory. `distributed`: the logit statistics and the adversary's gradient
    are reduced over every rank of the process group (the trainer); False for a single process that
    may run inside a group (the estimator). `row_weights`: the predictor loss's row weights
    (`predictor_backward`). `project` False: the predictor's gradient is left as its own loss gives it
    (no projection, no alpha term) while the adversary still learns: the unconstrained warm-up of
    fairness.control guard. `weigh_adversary` (fairness.adversary_weights "rows"): the adversary's loss
    weighs each row by the same `row_weights` as the predictor's (taken once, before any backward), so
    the adversary learns, and pushes, on the reweighed rows the predictor learns from. `row_loss`: the
    predictor's per-row loss (`predictor_backward`; None: the cross-entropy).

    Returns (adversary loss, predictor loss) of this rank's micro-batches, as detached tensors."""
    accum = len(micro)
    sync = sync or (lambda i: nullcontext())
    for p in predictor_params:  # the adversary's gradient is what this step's backward leaves, nothing older
        p.grad = None
    standardize = variant != "representation" and adversary_input == "standardized_logit"
    stats = None
    if standardize and accum > 1:
        # the whole batch's logit statistics before any micro-batch's backward: one forward without a
        # graph (with a single micro-batch they come from its forward). A model with dropout (a Hugging
        # Face one) draws other masks in this pass, so its statistics are those of a neighbouring
        # forward, not of the one trained on.
        with torch.no_grad():
            stats = logit_stats([forward(b)[1] for b in micro], reduce=distributed)
    weights = row_weights(micro) if weigh_adversary and row_weights is not None else None
    adv_total, logits = None, []
    for i, b in enumerate(micro):
        with sync(i):
            z, logit = forward(b)
            if standardize and stats is None:
                stats = logit_stats([logit], reduce=distributed)
            a_in = adversary_inputs(variant, z, logit, b["y"], adversary_input, stats,
                                    with_label=getattr(adversary, "label_column", False))
            target = b.get("adversary_target", b["identity"])
            rows = learning_rows(adversary, variant, b["y"])
            la = adversary_loss(adversary(a_in), target, rows, None if weights is None else weights[i]) / accum
            # 0 * logit: the head gets a (zero) gradient, so DDP sees every parameter used
            (la + 0.0 * logit.sum()).backward(retain_graph=reuse)
        adv_total = la.detach() if adv_total is None else adv_total + la.detach()
        if reuse:
            logits.append(logit)
    g_a = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in predictor_params]
    for p in predictor_params:
        p.grad = None
    if distributed:
        all_reduce_grads_mean(list(adversary.parameters()))
    taken = row_weights if weights is None else (lambda _: weights)  # group DRO's q moves once a step
    total = predictor_backward(lambda b, i: logits[i] if reuse else forward(b)[1], micro, sync, taken, row_loss)
    g_p = [p.grad if p.grad is not None else torch.zeros_like(p) for p in predictor_params]
    if project:
        for p, g in zip(predictor_params, projected_gradients(g_p, g_a, alpha)):
            p.grad = g
    return adv_total, total


def predictor_backward(logit_of: Callable[[dict[str, torch.Tensor], int], torch.Tensor],
                       micro: Sequence[dict[str, torch.Tensor]],
                       sync: Callable[[int], AbstractContextManager] | None = None,
                       row_weights: RowWeights | None = None, row_loss: RowLoss | None = None) -> torch.Tensor:
    """Backward of the predictor's binary cross-entropy, the mean over the micro-batches `micro`;
    `logit_of(b, i)` gives micro-batch i's logits. `row_weights(micro)`: one weight per row of each
    micro-batch (fairness.loss_weights, `steward.fairness.weighting`), taken before any backward;
    each micro-batch's loss is then the mean of weight * cross-entropy. `row_loss(logit, y)`: a per-row
    loss in place of the cross-entropy (fairness.predictor_loss, `steward.fairness.robust_loss`).
    Returns the (detached) loss of this rank's batch."""
    sync = sync or (lambda i: nullcontext())
    weights = row_weights(micro) if row_weights is not None else None
    total = None
    for i, b in enumerate(micro):
        with sync(i):
            logit = logit_of(b, i)
            if weights is None and row_loss is None:
                loss = F.binary_cross_entropy_with_logits(logit, b["y"].to(logit.dtype)) / len(micro)
            else:
                per_row = (row_loss(logit, b["y"]) if row_loss is not None else
                           F.binary_cross_entropy_with_logits(logit, b["y"].to(logit.dtype), reduction="none"))
                if weights is not None:
                    per_row = per_row * weights[i].to(per_row.dtype)
                loss = per_row.mean() / len(micro)
            loss.backward()
        total = loss.detach() if total is None else total + loss.detach()
    return total
