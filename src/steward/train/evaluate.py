"""A trained language model's loss on a data source: the held-out windows of any `data.source` the trainer
accepts, scored by next-token cross-entropy. `steward eval` (through `steward.jobs.evaluate_domains`)
builds its cross-domain matrix from these; the drift monitor's offline check reads the same windows.

Which windows: the validation split the trainer would hold out of that source with these `data.*`
settings (`steward.data.build_data`): for a finite source the documents whose salted hash falls under
data.val_fraction, for a stream the first data.val_docs documents. So a run scored on its own training
source is scored on exactly its validation set, and every run scored on a domain sees the same text.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from steward.data import build_data


def heldout_windows(data_cfg, tokenizer, seq_len: int, max_windows: int) -> np.ndarray:
    """The first `max_windows` (0: all) held-out windows [n, seq_len + 1] of `data_cfg.source`."""
    from steward.config import Train

    train_cfg = dataclasses.replace(Train(), seq_len=seq_len, batch_size=1, val_batches=1)
    windows = build_data(data_cfg, train_cfg, tokenizer, 0, 1).val_windows
    return windows[:max_windows] if max_windows > 0 else windows


@torch.no_grad()
def window_losses(model, windows: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Mean next-token cross-entropy of each window (float64), the model in eval mode on the CPU."""
    out = np.empty(len(windows), dtype=np.float64)
    for i in range(0, len(windows), batch_size):
        batch = torch.from_numpy(windows[i : i + batch_size].astype(np.int64))
        logits = model(batch[:, :-1]).double()
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")
        out[i : i + len(batch)] = loss.mean(dim=1).numpy()
    return out


def domain_loss(model, windows: np.ndarray, batch_size: int = 8) -> dict[str, Any]:
    """Loss (mean over the windows' tokens; every window has seq_len of them) and perplexity."""
    losses = window_losses(model, windows, batch_size)
    loss = float(losses.mean())
    return {"loss": loss, "perplexity": math.exp(loss), "windows": int(len(windows)),
            "tokens": int(len(windows) * (windows.shape[1] - 1))}
