"""Put a built model onto the mesh, in torchtitan's order: pipeline split and tensor parallel
(`apply_model_parallel`), then (elsewhere) rematerialization and compile, then data parallel
(`apply_data_parallel`): DDP (replicate), FSDP2 (shard) or HSDP (both).

The model never knows it is distributed; this is the one place that wraps it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.nn.parallel import DistributedDataParallel as DDP

from steward.parallel.mesh import ParallelDims

if TYPE_CHECKING:
    from steward.comm import GradSync


def blocks_of(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks, for per-block sharding, checkpointing and compilation."""
    if hasattr(model, "blocks"):
        return list(model.blocks())
    return list(model.layers.values())


def apply_model_parallel(model: nn.Module, dims: ParallelDims, mesh: DeviceMesh | None) -> nn.Module:
    """Keep this rank's pipeline stage (pp > 1), then shard it over the tp mesh (tp > 1). In place,
    on the meta device, before rematerialization, compile and data parallel."""
    if dims.pp > 1:
        from steward.parallel.pipeline import split_stage

        split_stage(model, dims.pp, mesh.get_local_rank("pp"))
    if dims.tp > 1:
        from steward.parallel.tp import apply_tensor_parallel

        apply_tensor_parallel(model, mesh["tp"])
    return model


def apply_data_parallel(
    model: nn.Module, dims: ParallelDims, mesh: DeviceMesh | None, param_dtype: torch.dtype | None,
    grad_sync: GradSync | None = None, shard_gradients: bool = False,
) -> nn.Module:
    """Returns the module to train. FSDP2 shards in place (fully_shard per block, then the root).
    `grad_sync` (steward.comm) takes over the gradient all-reduce: DDP comm hook, FSDP2 all-reduce hook.
    `shard_gradients` (parallel.shard_gradients): ZeRO-2 over dp_replicate instead of DDP."""
    strategy = dims.strategy
    if strategy == "single":
        return model
    if strategy == "ddp" and not dims.uses_fsdp and shard_gradients:
        from steward.parallel.zero import ShardedGradients

        return ShardedGradients(model, mesh["dp_replicate"].get_group())
    if strategy == "ddp" and not dims.uses_fsdp:
        device = next(model.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        ddp = DDP(model, device_ids=ids, process_group=mesh["dp_replicate"].get_group())
        if grad_sync is not None:
            grad_sync.attach_ddp(ddp)
        return ddp
    # bf16 compute reduces its gradients in float32; full precision (float32 or float64) in its own dtype
    mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32 if param_dtype is not None else None)
    dp_mesh = mesh["dp_shard"] if strategy == "fsdp" else mesh["dp_replicate", "dp_shard"]
    if grad_sync is not None and grad_sync.owns_replicate_all_reduce:
        # native HSDP cannot compress its replicate all-reduce: shard over dp_shard only, and
        # grad_sync's hook all-reduces each reduce-scatter output across dp_replicate
        dp_mesh = mesh["dp_shard"]
    blocks = blocks_of(model)
    for i, block in enumerate(blocks):
        # the last block's parameters are needed right away by backward: keep them gathered; under
        # pipelining every micro-batch's forward would gather them again, so keep all gathered (torchtitan)
        reshard = i < len(blocks) - 1 and dims.pp == 1
        fully_shard(block, mesh=dp_mesh, mp_policy=mp, reshard_after_forward=reshard)
    fully_shard(model, mesh=dp_mesh, mp_policy=mp)
    if grad_sync is not None:
        grad_sync.attach_fsdp(model)
    return model


def reshard_after_inference(model: nn.Module) -> None:
    """Reshard every FSDP2 module after forwards with no backward (an evaluation, a scoring pass).

    Modules built with reshard_after_forward=False (the last block, the root) keep their parameters
    gathered for a backward that such a forward never runs; the next training step then starts from that
    state, and its gradients differed from one process's (a 2-rank FSDP2 run with the fairness
    controller's scoring pass diverged from one process after the pass). Resharding returns every module
    to the state a training step expects, and frees the gathered copies. No-op without FSDP2."""
    from torch.distributed.fsdp import FSDPModule

    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.reshard()


def set_gradient_sync(model: nn.Module, enabled: bool):
    """Context or call that turns gradient all-reduce off for non-final micro-batches."""
    import contextlib

    from steward.parallel.zero import ShardedGradients

    if isinstance(model, (DDP, ShardedGradients)):
        return contextlib.nullcontext() if enabled else model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(enabled)
    return contextlib.nullcontext()


def finish_gradient_sync(model: nn.Module):
    """Once the last backward of a step has run: the process group that the gradient norm must be summed
    over, where each rank holds only some gradients (ZeRO-2, after its reductions are done), else None."""
    from steward.parallel.zero import ShardedGradients

    if isinstance(model, ShardedGradients):
        model.finish()
        return model.group
    return None
