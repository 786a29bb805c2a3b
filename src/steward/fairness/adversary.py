"""Adversarial debiasing (Zhang, Lemoine and Mitchell 2018, "Mitigating unwanted biases with
adversarial learning").

An adversary A predicts the protected attributes (every subgroup of every family at once, one
logit each) from what the predictor P exposes:

- "representation": the pooled representation z (the decoder's features before the head);
- "demographic_parity": the prediction p;
- "equalized_odds": p together with the label y, as [p, p*y, p*(1-y)] (the paper's section 4).

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

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from steward.fairness.metrics import FairnessError

VARIANTS = ("representation", "demographic_parity", "equalized_odds")
INPUTS = ("standardized_logit", "probability")
SCHEDULES = ("constant", "sqrt")
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
    flat = torch.cat([t.detach().reshape(-1) for t in logits]).double()
    sums = torch.stack([flat.sum(), (flat * flat).sum(), torch.tensor(float(flat.numel()), dtype=torch.float64,
                                                                         device=flat.device)])
    if reduce and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(sums)
    mean = sums[0] / sums[2]
    var = (sums[1] / sums[2] - mean * mean).clamp_min(0.0)
    return torch.stack([mean, var.sqrt()]).float()


def adversary_inputs(variant: str, z: torch.Tensor | None, logit: torch.Tensor, y: torch.Tensor,
                     kind: str = "standardized_logit", stats: torch.Tensor | None = None) -> torch.Tensor:
    """What the adversary sees for `variant` (see the module docstring). For kind
    "standardized_logit", `stats` is `logit_stats(...)` of the whole (global) batch; None: this
    batch's own, not reduced across ranks (one process, no accumulation)."""
    if variant == "representation":
        assert z is not None
        return z
    if variant not in VARIANTS:
        raise FairnessError(f"fairness.adversary: must be none or one of {', '.join(VARIANTS)}, got {variant!r}")
    if kind == "standardized_logit":
        st = logit_stats([logit], reduce=False) if stats is None else stats
        p = ((logit.float() - st[0]) / st[1].clamp_min(STD_FLOOR)).reshape(-1, 1)
    elif kind == "probability":
        p = torch.sigmoid(logit.float()).reshape(-1, 1)
    else:
        raise FairnessError(f"fairness.adversary_input: must be one of {', '.join(INPUTS)}, got {kind!r}")
    if variant == "demographic_parity":
        return p
    yy = y.reshape(-1, 1).to(p.dtype)
    return torch.cat([p, p * yy, p * (1 - yy)], dim=1)


def adversary_input_dim(variant: str, feature_dim: int) -> int:
    return {"representation": feature_dim, "demographic_parity": 1, "equalized_odds": 3}[variant]


class Adversary(nn.Module):
    """Logits for every protected subgroup; linear (hidden = 0) or one hidden ReLU layer."""

    def __init__(self, in_dim: int, num_groups: int, hidden: int = 0):
        super().__init__()
        if hidden:
            self.net: nn.Module = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_groups))
        else:
            self.net = nn.Linear(in_dim, num_groups)

    @torch.no_grad()
    def start_at_prior(self, identity: torch.Tensor | np.ndarray) -> None:
        """Set the output bias to the log-odds of each subgroup's share of `identity` [N, K] (and the
        output weights to zero), so the adversary starts at the base rates: its loss is then the
        prior's entropy and its gradient says only what the predictor reveals beyond the base rates.
        From a random start, most of its early gradient (and so of the predictor's adversary term)
        is about learning those rates, which pushes every prediction alike instead of removing a bias."""
        rates = torch.as_tensor(np.asarray(identity, dtype=np.float64)).mean(0).clamp(1e-4, 1 - 1e-4)
        last = self.net[-1] if isinstance(self.net, nn.Sequential) else self.net
        last.bias.copy_(torch.log(rates / (1 - rates)).to(last.bias))
        last.weight.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float())


def adversary_loss(logits: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over examples and subgroups (multi-label: families at once)."""
    return F.binary_cross_entropy_with_logits(logits, identity.to(logits.dtype))


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


# ---- the standalone estimator (fairlearn's style) -------------------------------------------------

class _MLP(nn.Module):
    """The default predictor: features (one hidden layer) then a linear head; `features` is what the
    representation adversary sees."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU()) if hidden else nn.Identity()
        self.head = nn.Linear(hidden or in_dim, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(-1)


def _one_hot(sensitive: Any) -> tuple[np.ndarray, list[str]]:
    """Sensitive features -> [N, K] 0/1: a 1-D array of categories is one-hot encoded; a 2-D 0/1 array
    (several attributes, possibly overlapping) is used as it is."""
    a = np.asarray(sensitive)
    if a.ndim == 1:
        cats = sorted({str(v) for v in a.tolist()})
        if len(cats) < 2:
            raise FairnessError("sensitive_features: need at least two distinct groups")
        mat = np.stack([np.array([str(v) == c for v in a.tolist()]) for c in cats], 1).astype(np.float32)
        return mat, cats
    if a.ndim == 2:
        if not np.isin(a, (0, 1)).all():
            raise FairnessError("sensitive_features: a 2-D array must hold 0/1 memberships (binarise fractions at 0.5)")
        return a.astype(np.float32), [str(i) for i in range(a.shape[1])]
    raise FairnessError(f"sensitive_features: must be 1-D (categories) or 2-D (0/1 memberships), got {a.ndim}-D")


class AdversarialDebiaser:
    """Adversarial debiasing for any torch binary classifier (Zhang et al. 2018), fairlearn-style:
    the constructor only stores its arguments; `fit(X, y, *, sensitive_features=...)`; fitted state
    ends in `_`.

    `predictor`: a module mapping a float batch [B, ...] to logits [B] (or [B, 1]); it needs a
    `features(x)` method and a `head` module for constraints="representation". None: an MLP with
    `hidden` units. `constraints`: "demographic_parity", "equalized_odds" or "representation".
    `adversary_input`: how the prediction reaches the adversary, "standardized_logit" (standardised
    over each batch) or "probability" (the paper's sigmoid); see the module docstring.
    `alpha = 0` trains the plain predictor (no projection, no adversary term).
    """

    def __init__(self, *, predictor: nn.Module | None = None, constraints: str = "demographic_parity",
                 alpha: float = 1.0, alpha_schedule: str = "constant", hidden: int = 32, adversary_hidden: int = 0,
                 learning_rate: float = 1e-3, adversary_learning_rate: float | None = None, epochs: int = 10,
                 batch_size: int = 64, random_state: int | None = None, device: str = "cpu",
                 adversary_input: str = "standardized_logit"):
        self.predictor = predictor
        self.constraints = constraints
        self.adversary_input = adversary_input
        self.alpha = alpha
        self.alpha_schedule = alpha_schedule
        self.hidden = hidden
        self.adversary_hidden = adversary_hidden
        self.learning_rate = learning_rate
        self.adversary_learning_rate = adversary_learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device

    def _predict_parts(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        p = self.predictor_
        if self.constraints == "representation":
            z = p.features(x)
            return z, p.head(z).reshape(-1)
        return None, p(x).reshape(-1)

    def fit(self, X: Any, y: Any, *, sensitive_features: Any) -> AdversarialDebiaser:
        if self.constraints not in VARIANTS:
            raise FairnessError(f"constraints: must be one of {', '.join(VARIANTS)}, got {self.constraints!r}")
        if self.adversary_input not in INPUTS:
            raise FairnessError(f"adversary_input: must be one of {', '.join(INPUTS)}, got {self.adversary_input!r}")
        alpha_at(self.alpha, self.alpha_schedule, 1)  # validates the schedule
        x = torch.as_tensor(np.asarray(X, dtype=np.float32))
        yy = np.asarray(y)
        if x.ndim < 2 or x.shape[0] != yy.shape[0]:
            raise FairnessError(f"X and y: need X [N, ...] and y [N], got {tuple(x.shape)} and {yy.shape}")
        if not np.isin(yy, (0, 1)).all():
            raise FairnessError("y: must be 0/1 labels")
        s, self.groups_ = _one_hot(sensitive_features)
        if s.shape[0] != x.shape[0]:
            raise FairnessError(f"sensitive_features: {s.shape[0]} rows, X has {x.shape[0]}")
        gen = torch.Generator().manual_seed(0 if self.random_state is None else int(self.random_state))
        if self.random_state is not None:
            torch.manual_seed(int(self.random_state))
        dev = torch.device(self.device)
        self.predictor_ = (self.predictor if self.predictor is not None else _MLP(x[0].numel(), self.hidden)).to(dev)
        if self.constraints == "representation" and not (hasattr(self.predictor_, "features") and hasattr(self.predictor_, "head")):
            raise FairnessError("predictor: constraints='representation' needs a `features(x)` method and a `head` module")
        with torch.no_grad():
            z, _ = self._predict_parts(x[:2].to(dev))
        in_dim = adversary_input_dim(self.constraints, z.shape[-1] if z is not None else 0)
        self.adversary_ = Adversary(in_dim, s.shape[1], self.adversary_hidden).to(dev)
        self.adversary_.start_at_prior(s)
        p_params = [p for p in self.predictor_.parameters() if p.requires_grad]
        opt_p = torch.optim.Adam(p_params, lr=self.learning_rate)
        opt_a = torch.optim.Adam(self.adversary_.parameters(), lr=self.adversary_learning_rate or self.learning_rate,
                                 eps=ADAM_EPS)
        yt = torch.as_tensor(yy.astype(np.float32))
        st = torch.as_tensor(s)
        n = x.shape[0]
        step = 0
        self.history_: list[dict[str, float]] = []
        for _ in range(self.epochs):
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, self.batch_size):
                idx = perm[i: i + self.batch_size]
                step += 1
                xb = x[idx].to(dev)
                la, lp = debias_step(
                    functools.partial(self._predict_parts, xb), yt[idx].to(dev), st[idx].to(dev),
                    p_params, self.adversary_, self.constraints, alpha_at(self.alpha, self.alpha_schedule, step),
                    self.adversary_input,
                )
                opt_p.step()
                opt_a.step()
                opt_p.zero_grad(set_to_none=True)
                opt_a.zero_grad(set_to_none=True)
                self.history_.append({"predictor_loss": lp, "adversary_loss": la})
        self.n_steps_ = step
        return self

    @torch.no_grad()
    def decision_function(self, X: Any) -> np.ndarray:
        x = torch.as_tensor(np.asarray(X, dtype=np.float32)).to(self.device)
        self.predictor_.eval()
        out = self._predict_parts(x)[1].cpu().numpy()
        self.predictor_.train()
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        p1 = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.stack([1 - p1, p1], 1)

    def predict(self, X: Any) -> np.ndarray:
        return (self.decision_function(X) >= 0).astype(int)


def debias_step(forward, y: torch.Tensor, identity: torch.Tensor, predictor_params: Sequence[nn.Parameter],
                adversary: nn.Module, variant: str, alpha: float,
                adversary_input: str = "standardized_logit") -> tuple[float, float]:
    """One process, one batch: leave the projected predictor gradient in the predictor's .grad and the
    adversary's gradient in its .grad; returns (adversary loss, predictor loss).

    `forward()` -> (z or None, logits [B]). With alpha == 0 and no projection wanted, callers skip
    the adversary entirely; here the adversary still learns (so its loss can be reported)."""
    z, logit = forward()
    lp = F.binary_cross_entropy_with_logits(logit.float(), y.float())
    stats = logit_stats([logit], reduce=False)
    a_logits = adversary(adversary_inputs(variant, z, logit, y, adversary_input, stats))
    la = adversary_loss(a_logits, identity)
    g_a = torch.autograd.grad(la, predictor_params, retain_graph=True, allow_unused=True)
    g_a = [torch.zeros_like(p) if g is None else g for p, g in zip(predictor_params, g_a)]
    for p in predictor_params:
        p.grad = None
    lp.backward(inputs=list(predictor_params), retain_graph=True)
    g_p = [torch.zeros_like(p) if p.grad is None else p.grad for p in predictor_params]
    for p, g in zip(predictor_params, projected_gradients(g_p, g_a, alpha)):
        p.grad = g
    # the adversary learns from the same forward, on inputs it cannot push back through
    a_in = adversary_inputs(variant, None if z is None else z.detach(), logit.detach(), y, adversary_input, stats)
    adversary_loss(adversary(a_in), identity).backward(inputs=list(adversary.parameters()))
    return float(la.detach()), float(lp.detach())
