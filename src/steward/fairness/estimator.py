"""The standalone adversarial debiasing estimator (scikit-learn API, fairlearn's style) for any torch
binary classifier: the same debiasing step as the classifier trainer, on one process.

Needs scikit-learn (`pip install steward[fairness]`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn

from steward.fairness.adversary import (
    ADAM_EPS,
    INPUTS,
    VARIANTS,
    Adversary,
    adversarial_step,
    adversary_input_dim,
    adversary_rows,
    alpha_at,
)
from steward.fairness.metrics import FairnessError


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


class AdversarialDebiaser(ClassifierMixin, BaseEstimator):
    """Adversarial debiasing for any torch binary classifier (Zhang et al. 2018), a scikit-learn
    estimator like fairlearn's: the constructor only stores its arguments (`get_params`/`set_params`,
    `clone` work); `fit(X, y, *, sensitive_features=...)`; fitted state ends in `_`; `predict`,
    `predict_proba`, `decision_function`, `score` (accuracy). Each batch takes the trainer's own
    debiasing step (`steward.fairness.adversary.adversarial_step`).

    `predictor`: a module mapping a float batch [B, ...] to logits [B] (or [B, 1]); it needs a
    `features(x)` method and a `head` module for constraints="representation". None: an MLP with
    `hidden` units. `constraints`: "demographic_parity", "equalized_odds", "equal_opportunity" (on the
    rows with y = 0) or "representation".
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
        self.adversary_.start_at_prior(s, adversary_rows(self.constraints, yy))
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
                batch = {"x": xb, "y": yt[idx].to(dev), "identity": st[idx].to(dev)}
                la, lp = adversarial_step(
                    lambda b: self._predict_parts(b["x"]), [batch], p_params, self.adversary_, self.constraints,
                    alpha_at(self.alpha, self.alpha_schedule, step), self.adversary_input, reuse=True,
                    distributed=False,
                )
                opt_p.step()
                opt_a.step()
                opt_p.zero_grad(set_to_none=True)
                opt_a.zero_grad(set_to_none=True)
                self.history_.append({"predictor_loss": float(lp), "adversary_loss": float(la)})
        self.n_steps_ = step
        self.classes_ = np.array([0, 1])
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
