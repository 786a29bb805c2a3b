"""One way to build the model a trainer trains: from a module factory to a parallelized, initialised
module, in torchtitan's order (build on meta, pipeline split and tensor parallel, rematerialization,
compile, data parallel, allocate, initialise, rank 0's weights to every rank).

The language-model trainer (the decoder, or a Hugging Face causal LM) and the classifier trainer (the
same inside a `SequenceClassifier`) differ only in their `ModelFactory`; `materialize` is the same
model whole in one process (evaluation after training, and rank 0's copy for sharded runs).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from steward.config import JobConfig, Train
from steward.models import ModelArgs
from steward.parallel import ParallelDims, apply_data_parallel, apply_model_parallel, blocks_of
from steward.train.distributed import broadcast_object
from steward.train.remat import plan_and_apply

RANK0_INIT_LIMIT_BYTES = 4 * 2**30
"""model.init_mode = auto initialises on rank 0 and broadcasts when the fp32 weights fit in this."""


@dataclass
class ModelFactory:
    """What differs between the models a trainer can build.

    `make()` returns the module: on the meta device, uninitialised, for a model built from `args`
    (`pretrained` False: the builder allocates and calls `init(module)` after sharding); loaded with its
    weights for a pretrained one (`pretrained` True). It is called after the trainer's seed is set, so
    anything it draws (a fresh head on a pretrained body) is reproducible. `flops(module, num_params)`
    gives the training FLOPs per token of the whole module `make()` returned."""

    make: Callable[[], nn.Module]
    init: Callable[[nn.Module], None]
    flops: Callable[[nn.Module, int], float]
    pretrained: bool = False
    args: ModelArgs | None = None
    """The decoder's shapes (for the rematerialization planner); None for a pretrained model."""


def param_dtype(t: Train) -> torch.dtype:
    """The dtype of weights, gradients and optimizer states (train.dtype)."""
    return torch.float64 if t.dtype == "float64" else torch.float32


def amp_dtype(t: Train, device: torch.device) -> torch.dtype | None:
    """bf16 when train.mixed_precision asks for it (auto: on a GPU), else None (full precision)."""
    if t.dtype == "float64":
        return None
    use_bf16 = t.mixed_precision == "bf16" or (t.mixed_precision == "auto" and device.type == "cuda")
    return torch.bfloat16 if use_bf16 else None


@dataclass
class BuiltModel:
    model: nn.Module
    """What to train: the module, wrapped or sharded for data parallelism."""
    num_params: int
    flops_per_token: float
    memory: dict[str, Any]
    """The rematerialization plan (decided by steward.planning.remat, applied by steward.memory)."""
    amp_dtype: torch.dtype | None
    autocast: AbstractContextManager


def _make(factory: ModelFactory, dtype: torch.dtype) -> nn.Module:
    model = factory.make()
    if dtype != torch.float32:
        model.to(dtype)  # on meta only the dtype changes; a pretrained model is converted
    return model


def materialize(factory: ModelFactory, cfg: JobConfig, device: torch.device | str = "cpu") -> nn.Module:
    """The model whole in one process, initialised exactly as a one-process run initialises it (seeded
    with train.seed): rank 0's copy for sharded runs, and the model to load a checkpoint into."""
    torch.manual_seed(cfg.train.seed)
    model = _make(factory, param_dtype(cfg.train))
    if factory.pretrained:
        return model.to(device)
    model.to_empty(device=device)
    with torch.no_grad():
        factory.init(model)
    return model


def _initialise_sharded(model: nn.Module, factory: ModelFactory, cfg: JobConfig, dims: ParallelDims,
                        device: torch.device, rank: int, num_params: int) -> None:
    """Allocate only this rank's shards and initialise them; with model.init_mode rank0 (auto: when the
    fp32 weights fit in RANK0_INIT_LIMIT_BYTES) every rank then gets exactly the one-process weights."""
    model.to_empty(device=device)
    mode = cfg.model.init_mode
    from_rank0 = mode == "rank0" or (mode == "auto" and num_params * 4 <= RANK0_INIT_LIMIT_BYTES)
    with torch.no_grad(), warnings.catch_warnings():
        if from_rank0:
            # rank 0's weights replace these below, so torch's warning that DTensor random ops on a
            # CPU mesh may differ from one process's does not apply
            warnings.filterwarnings("ignore", message="DTensor random operators may not have complete")
        factory.init(model)  # also computes the non-persistent buffers on every rank
    if from_rank0:
        # a pipeline stage holds only some of rank 0's full weights
        broadcast_full_weights(model, lambda: materialize(factory, cfg), rank, strict=dims.pp == 1)


def build_parallel_model(factory: ModelFactory, cfg: JobConfig, dims: ParallelDims, mesh, device: torch.device,
                         rank: int, is_main: bool, grad_sync=None) -> BuiltModel:
    """Build, parallelize and initialise the model `factory` describes for this rank (see the module
    docstring for the order). `grad_sync` (steward.comm) takes over the data-parallel all-reduce."""
    torch.manual_seed(cfg.train.seed)
    amp = amp_dtype(cfg.train, device)
    model = _make(factory, param_dtype(cfg.train))
    num_params = sum(p.numel() for p in model.parameters())
    flops = factory.flops(model, num_params)
    if factory.pretrained:
        model = model.to(device)
    else:
        # first: this rank's pipeline stage, tensor parallel (then remat, compile, FSDP)
        model = apply_model_parallel(model, dims, mesh)
    # rematerialization per block (memory.policy): after tensor parallel, before compile and FSDP
    memory = plan_and_apply(cfg, blocks_of(model), dims, device, factory.args, is_main, broadcast_object)
    if cfg.train.compile:
        for block in blocks_of(model):
            block.compile()
    if factory.pretrained:
        model = apply_data_parallel(model, dims, mesh, amp, grad_sync, cfg.parallel.shard_gradients)
    elif dims.uses_fsdp or dims.model_parallel:
        # shard on meta, allocate only this rank's shards, then initialise: the full model is never
        # materialised on one rank (except rank 0's copy with init_mode rank0)
        model = apply_data_parallel(model, dims, mesh, amp, grad_sync, cfg.parallel.shard_gradients)
        _initialise_sharded(model, factory, cfg, dims, device, rank, num_params)
    else:
        model.to_empty(device=device)
        with torch.no_grad():
            factory.init(model)
        model = apply_data_parallel(model, dims, mesh, amp, grad_sync, cfg.parallel.shard_gradients)
    # FSDP2 already casts parameters; elsewhere bf16 comes from autocast
    autocast = (torch.autocast(device_type=device.type, dtype=amp) if amp is not None and not dims.uses_fsdp
                else nullcontext())
    return BuiltModel(model, num_params, flops, memory, amp, autocast)


def broadcast_full_weights(model: nn.Module, build_full, rank: int, strict: bool = True) -> None:
    """Give a sharded model rank 0's full weights: every rank ends with its shards of them.
    strict=False for a pipeline stage, which takes only its own entries of the full state dict."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    full = build_full().state_dict() if rank == 0 else {}
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True,
                                                               strict=strict))
