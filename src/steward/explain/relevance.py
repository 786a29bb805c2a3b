"""Relevance of each input token to one prediction per sequence.

- raw attention: the last layer's attention row at the prediction position, mean over heads;
- attention rollout (Abnar and Zuidema 2020): A_l' = 0.5 A_l + 0.5 I (head mean, rows renormalised),
  R = A_L' ... A_1', read at the prediction row;
- gradient-weighted attention (Chefer, Gur and Wolf 2021, "Generic Attention-model Explainability",
  eq. 5-6): R = I, then per layer R += mean_h[(dy/dA_l * A_l)^+] R, read at the prediction row, with y
  the predicted class's logit (a binary classifier's single logit z: y = z for class 1, -z for class 0,
  `Forward.explained`);
- Grad-CAM on the last attention layer (Selvaraju et al. 2017, as Chefer, Gur and Wolf 2021 apply it
  to transformers as a baseline): the last layer's attention row at the prediction, each head weighted
  by the mean of its gradient over that row, averaged over heads, negatives clipped;
- Integrated Gradients (Sundararajan et al. 2017) on the token embeddings through Captum, summed
  over the embedding dimension, baseline the padding token's embedding: an outside baseline;
- random: uniform noise, the floor every method should beat in the faithfulness table.

All take right-padded batches and return [B, T] float tensors, zero on padding.
"""

from __future__ import annotations

import torch

from steward.explain.capture import Explainable, Forward
from steward.models.gpt import upcast

METHODS = ("attention", "rollout", "grad_attention", "grad_cam", "integrated_gradients", "random")
GRADIENT_METHODS = ("grad_attention", "grad_cam")
"""Methods that need d(predicted logit)/d(attention)."""


def prediction_rows(R: torch.Tensor, positions: torch.Tensor, pooling: str = "last") -> torch.Tensor:
    """The prediction's row of R [B, T, T]: at `positions`, or the mean of rows 0..position."""
    if pooling == "mean":
        valid = _pad_mask(R.shape[1], positions).to(R.device, R.dtype)
        return (valid[:, :, None] * R).sum(1) / valid.sum(1, keepdim=True)
    return R[torch.arange(R.shape[0]), positions]


def _pad_mask(T: int, positions: torch.Tensor) -> torch.Tensor:
    return torch.arange(T)[None, :] <= positions[:, None].cpu()


def raw_attention(probs: list[torch.Tensor], positions: torch.Tensor, pooling: str = "last") -> torch.Tensor:
    return prediction_rows(upcast(probs[-1].detach()).mean(1), positions, pooling)


def rollout(probs: list[torch.Tensor], positions: torch.Tensor, residual: float = 0.5,
            pooling: str = "last") -> torch.Tensor:
    B, _, T, _ = probs[0].shape
    eye = torch.eye(T, device=probs[0].device, dtype=upcast(probs[0]).dtype)
    R = eye.expand(B, T, T)
    for A in probs:
        A = residual * eye + (1 - residual) * upcast(A.detach()).mean(1)
        A = A / A.sum(-1, keepdim=True)
        R = A @ R
    return prediction_rows(R, positions, pooling)


def grad_attention(probs: list[torch.Tensor], grads: list[torch.Tensor], positions: torch.Tensor,
                   pooling: str = "last") -> torch.Tensor:
    B, _, T, _ = probs[0].shape
    R = torch.eye(T, device=probs[0].device, dtype=upcast(probs[0]).dtype).expand(B, T, T)
    for A, G in zip(probs, grads):
        cam = (upcast(G.detach()) * upcast(A.detach())).clamp(min=0).mean(1)
        R = R + cam @ R
    return prediction_rows(R, positions, pooling)


def grad_cam(probs: list[torch.Tensor], grads: list[torch.Tensor], positions: torch.Tensor,
             pooling: str = "last") -> torch.Tensor:
    A, G = probs[-1].detach().float(), grads[-1].detach().float()  # [B, H, T, T]
    B, H, T, _ = A.shape
    rows = [prediction_rows(x.reshape(B * H, T, T), positions.repeat_interleave(H), pooling).reshape(B, H, T)
            for x in (A, G)]
    valid = _pad_mask(T, positions).to(A.device, A.dtype)[:, None, :]  # the row's causal, real positions
    weight = (rows[1] * valid).sum(-1, keepdim=True) / valid.sum(-1, keepdim=True)  # [B, H, 1]
    return (rows[0] * weight).mean(1).clamp(min=0)


def integrated_gradients(expl: Explainable, tokens: torch.Tensor, lengths: torch.Tensor,
                         target: torch.Tensor, n_steps: int = 16) -> torch.Tensor:
    from captum.attr import LayerIntegratedGradients

    def fn(t: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        return expl.forward(t, n).explained()

    lig = LayerIntegratedGradients(fn, expl.embedding())
    baseline = torch.full_like(tokens, expl.pad_id)
    attr = lig.attribute(tokens, baselines=baseline, target=target, additional_forward_args=(lengths,),
                         n_steps=n_steps, internal_batch_size=max(len(tokens), 1) * n_steps)
    return upcast(attr.sum(-1).detach())


def captured_forward(expl: Explainable, tokens: torch.Tensor, lengths: torch.Tensor,
                     grads: bool = True) -> tuple[Forward, list[torch.Tensor] | None, torch.Tensor]:
    """The eager forward with attention kept; with `grads`, d(predicted logit)/d(attention) per layer.
    Returns (forward, grads or None, predicted class per row)."""
    with torch.set_grad_enabled(grads):
        fwd = expl.forward(tokens, lengths, attentions=True)
        pred = fwd.scores.argmax(-1)
        g = None
        if grads:
            y = fwd.explained()[torch.arange(len(pred)), pred].sum()
            g = list(torch.autograd.grad(y, fwd.probs))
    return fwd, g, pred


def relevance(expl: Explainable, tokens: torch.Tensor, lengths: torch.Tensor,
              methods: tuple[str, ...] = ("attention", "rollout", "grad_attention"),
              ig_steps: int = 16, seed: int = 0) -> tuple[dict[str, torch.Tensor], Forward, torch.Tensor]:
    """Relevance [B, T] of every method asked, the captured forward and the predicted classes."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown relevance method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    fwd, g, pred = captured_forward(expl, tokens, lengths, grads=any(m in GRADIENT_METHODS for m in methods))
    pos = fwd.positions
    out: dict[str, torch.Tensor] = {}
    for m in methods:
        if m == "attention":
            r = raw_attention(fwd.probs, pos, fwd.pooling)
        elif m == "rollout":
            r = rollout(fwd.probs, pos, pooling=fwd.pooling)
        elif m == "grad_attention":
            r = grad_attention(fwd.probs, g, pos, fwd.pooling)
        elif m == "grad_cam":
            r = grad_cam(fwd.probs, g, pos, fwd.pooling)
        elif m == "integrated_gradients":
            r = integrated_gradients(expl, tokens, lengths, pred, ig_steps)
        else:
            r = torch.rand(tokens.shape, generator=torch.Generator().manual_seed(seed))
        out[m] = r.cpu() * _pad_mask(tokens.shape[1], pos)
    fwd.probs = [p.detach() for p in fwd.probs]
    return out, fwd, pred
