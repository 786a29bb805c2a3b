"""Row weights for the predictor's loss, the simple debiasing methods people try first
(`fairness.loss_weights`), next to the adversary:

- "reweigh": Kamiran and Calders (2012), "Data preprocessing techniques for classification without
  discrimination": each training row of group g and label y weighs w(g, y) = P(g) P(y) / P(g, y)
  (probabilities over the training split), so that in the weighted data the label is independent
  of the group.
- "group_dro": online group DRO (Sagawa, Koh, Hashimoto and Liang 2020, "Distributionally robust
  neural networks for group shifts", algorithm 1): groups are (g, y) pairs; each step the group
  weights q move as q_k <- q_k exp(eta * L_k) (L_k: group k's mean loss in this batch, eta:
  `fairness.group_dro_step`), are renormalised, and the loss is sum_k q_k L_k / sum_k q_k over the
  groups present in the batch.

A row's group g is its identity pattern: the set of subgroups it mentions (rows that mention none,
or carry no identity annotation, form the group "none"), numbered over the training split
(`identity_patterns`). Under data parallelism the group losses and counts are summed over every rank
before q moves, so every rank holds the same q and the weighted loss is the single-process one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

METHODS = ("none", "reweigh", "group_dro")


def identity_patterns(identity: np.ndarray) -> tuple[np.ndarray, int]:
    """(the pattern number of each row of the 0/1 identity matrix [N, K], the number of patterns):
    rows with the same subgroups share a number; numbers follow the patterns' sorted order."""
    ident = np.asarray(identity, dtype=np.int64).reshape(len(identity), -1)
    _, inverse = np.unique(ident, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    return inverse, int(inverse.max()) + 1 if len(inverse) else 0


def kamiran_calders_weights(groups: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """w = P(g) P(y) / P(g, y) for every row (g: its group number, y: its 0/1 label), in float64."""
    g = np.asarray(groups, dtype=np.int64)
    y = np.asarray(labels).astype(np.int64)
    n = len(g)
    cell = g * 2 + y
    p_g = np.bincount(g, minlength=g.max() + 1)[g] / n
    p_y = np.bincount(y, minlength=2)[y] / n
    p_gy = np.bincount(cell, minlength=cell.max() + 1)[cell] / n
    return p_g * p_y / p_gy


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


class GroupDRO:
    """The online group weights q over `num_groups` groups (every group starts at 1 / num_groups)."""

    def __init__(self, num_groups: int, step: float):
        self.step = step
        self.q = torch.full((num_groups,), 1.0 / num_groups, dtype=torch.float64)

    def update(self, losses: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """Move q with this batch's per-row losses [N] and group numbers [N] (this rank's rows; the
        sums are taken over every rank) and return each row's weight: q_k * N_all / (n_k * sum of q over
        the groups present), so that the mean of weight * loss over the global batch is
        sum_k q_k L_k / sum_k q_k."""
        k = len(self.q)
        g = group.to(torch.int64).cpu()
        sums = torch.zeros(2 * k + 1, dtype=torch.float64)
        sums[:k].index_add_(0, g, losses.detach().double().cpu())
        sums[k:2 * k].index_add_(0, g, torch.ones(len(g), dtype=torch.float64))
        sums[2 * k] = len(g)
        sums = _all_reduce_sum(sums.to(losses.device)).cpu()
        counts, total = sums[k:2 * k], sums[2 * k]
        present = counts > 0
        mean = torch.where(present, sums[:k] / counts.clamp_min(1.0), torch.zeros(k, dtype=torch.float64))
        q = self.q * torch.exp(self.step * mean)
        self.q = q / q.sum()
        norm = self.q[present].sum()
        per_group = torch.where(present, self.q * total / (counts.clamp_min(1.0) * norm), torch.zeros(k, dtype=torch.float64))
        return per_group[g].to(losses.device, losses.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {"q": self.q.clone(), "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q = state["q"].clone().to(torch.float64)


def group_dro_weights(dro: GroupDRO, logits: Sequence[torch.Tensor],
                      micro: Sequence[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
    """Move q once on the rows of every micro-batch of this step (their logits, any graph ignored)
    and return each micro-batch's row weights (`GroupDRO.update`)."""
    bce = [F.binary_cross_entropy_with_logits(lg.detach(), b["y"].to(lg.dtype), reduction="none")
           for lg, b in zip(logits, micro)]
    w = dro.update(torch.cat(bce), torch.cat([b["dro_group"] for b in micro]))
    return list(torch.split(w, [len(x) for x in bce]))


def training_columns(method: str, identity: np.ndarray, labels: np.ndarray) -> tuple[dict[str, torch.Tensor], int]:
    """The per-row columns `method` needs on the training split (a batch carries them), and the number of
    group DRO groups: "reweigh": `weight` (Kamiran-Calders); "group_dro": `dro_group` = 2 * pattern + y."""
    groups, n = identity_patterns(identity)
    y = np.asarray(labels).astype(np.int64)
    if method == "reweigh":
        return {"weight": torch.as_tensor(kamiran_calders_weights(groups, y), dtype=torch.float32)}, 0
    if method == "group_dro":
        return {"dro_group": torch.as_tensor(groups * 2 + y)}, 2 * n
    return {}, 0
