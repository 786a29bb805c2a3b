"""Noise-robust per-row losses for the predictor (`fairness.predictor_loss`), applied before the row
weights of `steward.fairness.weighting`:

- "bce": the binary cross-entropy (the default; `predictor_backward` then keeps its own code path).
- "gce": generalized cross-entropy (Zhang and Sabuncu 2018, "Generalized cross entropy loss for
  training deep neural networks with noisy labels"): (1 - p_y^q) / q, p_y the predicted probability
  of the row's label, q = `fairness.loss_q`. Its gradient in the logit is p_y^q times the
  cross-entropy's, so a row the model contradicts (a label flipped against its text) pulls less.
  Its population minimiser is logit(p) = logit(eta) / (1 - q), a monotone transform of the posterior:
  it slows the fit of such rows, it does not change the ranking a converged model reaches.
- "truncated": the cross-entropy on the rows whose p_y (taken without gradient) is at least
  `fairness.loss_floor`, 0 on the others: rows the model confidently contradicts leave the loss.

Screened on top of v7 for v8 (third attempt, tuning sources laundry and campsite) and not adopted:
README, fairness, "A third v8 attempt".
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LOSSES = ("bce", "gce", "truncated")
RowLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gce_loss(logit: torch.Tensor, y: torch.Tensor, q: float) -> torch.Tensor:
    """Per-row generalized cross-entropy (1 - p_y^q) / q of logits [B] against 0/1 labels [B]."""
    log_py = -F.binary_cross_entropy_with_logits(logit, y.to(logit.dtype), reduction="none")
    return (1.0 - torch.exp(q * log_py)) / q


def truncated_loss(logit: torch.Tensor, y: torch.Tensor, floor: float) -> torch.Tensor:
    """Per-row cross-entropy, 0 where the predicted probability of the row's label is below `floor`."""
    bce = F.binary_cross_entropy_with_logits(logit, y.to(logit.dtype), reduction="none")
    return bce * (torch.exp(-bce.detach()) >= floor).to(bce.dtype)


def row_loss(kind: str, q: float, floor: float) -> RowLoss | None:
    """The per-row loss of `fairness.predictor_loss` `kind` (None for "bce": the plain cross-entropy)."""
    if kind == "gce":
        return lambda logit, y: gce_loss(logit, y, q)
    if kind == "truncated":
        return lambda logit, y: truncated_loss(logit, y, floor)
    return None
