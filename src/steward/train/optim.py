"""AdamW with decoupled weight decay on matrices only, and a warmup + cosine schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from steward.config import Train


def build_optimizer(cfg: Train, model: nn.Module, shard_group=None) -> torch.optim.Optimizer:
    """AdamW over `model`'s trainable parameters; with `shard_group` (ZeRO-1, parallel.shard_optimizer),
    its moments sharded over that group's ranks: each rank steps the parameters it owns, then they are
    broadcast (one flat bucket per rank)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            # norms (1-D) do not get weight decay; matrices and embeddings do
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    settings = {"lr": cfg.lr, "betas": (cfg.beta1, cfg.beta2), "eps": 1e-8, "foreach": True}
    if shard_group is None:
        return torch.optim.AdamW(groups, **settings)
    from torch.distributed.optim import ZeroRedundancyOptimizer

    return ZeroRedundancyOptimizer(groups, optimizer_class=torch.optim.AdamW, process_group=shard_group,
                                   parameters_as_bucket_view=True, **settings)


def lr_factor(step: int, cfg: Train) -> float:
    """Multiplier of train.lr for optimizer step `step` (0-based): linear warmup, then cosine to min_lr_ratio."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    decay_steps = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / decay_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(cfg: Train, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
