"""A classification head on a decoder's pooled representation.

`SequenceClassifier(backbone)` wraps our `Transformer` or an `HFCausalLM`: both expose
`hidden_states(tokens) -> [B, T, dim]`. The language-model output layer is dropped (a classifier
never uses it, and DDP refuses parameters that get no gradient). Pooling over the real tokens
(`mask`): "mean", or "last" (the last real token, which a causal decoder has let see the whole
sequence).
"""

from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("mean", "last")


def pool(h: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """h [B, T, D], mask [B, T] (1 for real tokens) -> [B, D]."""
    m = mask.to(h.dtype).unsqueeze(-1)
    if how == "mean":
        return (h * m).sum(1) / m.sum(1).clamp_min(1.0)
    if how == "last":
        last = (mask.long().sum(1) - 1).clamp_min(0)
        return h[torch.arange(h.shape[0], device=h.device), last]
    raise ValueError(f"train.pooling: must be one of {', '.join(POOLINGS)}, got {how!r}")


class SequenceClassifier(nn.Module):
    """backbone -> pooled features [B, dim] -> logits [B, num_labels] (num_labels = 1: a binary logit)."""

    def __init__(self, backbone: nn.Module, dim: int, num_labels: int = 1, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"train.pooling: must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.backbone = backbone
        if getattr(backbone, "output", None) is not None:  # our Transformer's LM head
            backbone.output = None
        inner = getattr(backbone, "model", None)
        if inner is not None and hasattr(inner, "lm_head"):  # an HF causal LM's head (unused: hidden_states)
            inner.lm_head = nn.Identity()
        self.pooling = pooling
        self.head = nn.Linear(dim, num_labels)

    def features(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The pooled representation the head (and a representation adversary) sees."""
        return pool(self.backbone.hidden_states(tokens), mask, self.pooling)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (features [B, dim], logits [B, num_labels])."""
        z = self.features(tokens, mask)
        return z, self.head(z)

    def blocks(self) -> list[nn.Module]:
        return list(self.backbone.blocks())

    def init_weights(self, buffer_device: torch.device | str | None = None, std: float = 0.02) -> None:
        """The backbone's own initialisation, then the head: normal(0, std) weights, zero bias."""
        self.backbone.init_weights(buffer_device)
        nn.init.normal_(self.head.weight, mean=0.0, std=std)
        nn.init.zeros_(self.head.bias)
