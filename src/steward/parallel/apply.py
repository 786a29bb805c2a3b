"""Put a built model onto the data-parallel mesh: DDP (replicate), FSDP2 (shard) or HSDP (both).

The model never knows it is distributed; this is the one place that wraps it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.nn.parallel import DistributedDataParallel as DDP

from steward.parallel.mesh import ParallelDims


def blocks_of(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks, for per-block sharding, checkpointing and compilation."""
    if hasattr(model, "blocks"):
        return list(model.blocks())
    return list(model.layers.values())


def apply_data_parallel(
    model: nn.Module, dims: ParallelDims, mesh: DeviceMesh | None, param_dtype: torch.dtype | None
) -> nn.Module:
    """Returns the module to train. FSDP2 shards in place (fully_shard per block, then the root)."""
    strategy = dims.strategy
    if strategy == "single":
        return model
    if strategy == "ddp":
        device = next(model.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        return DDP(model, device_ids=ids, process_group=mesh["dp_replicate"].get_group())
    mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    dp_mesh = mesh["dp_shard"] if strategy == "fsdp" else mesh["dp_replicate", "dp_shard"]
    blocks = blocks_of(model)
    for i, block in enumerate(blocks):
        # the last block's parameters are needed right away by backward: keep them gathered
        fully_shard(block, mesh=dp_mesh, mp_policy=mp, reshard_after_forward=i < len(blocks) - 1)
    fully_shard(model, mesh=dp_mesh, mp_policy=mp)
    return model


def set_gradient_sync(model: nn.Module, enabled: bool):
    """Context or call that turns gradient all-reduce off for non-final micro-batches."""
    import contextlib

    if isinstance(model, DDP):
        return contextlib.nullcontext() if enabled else model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(enabled)
    return contextlib.nullcontext()
