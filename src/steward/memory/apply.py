"""Apply a rematerialization policy to each transformer block.

A policy replaces the block's `forward` on the instance (not the class), so parameter names,
state dicts, checkpoints and the tensor-parallel plan see the same module tree as without it;
FSDP2 wraps the block afterwards (torchtitan's order: tensor parallel, activation
checkpointing, compile, FSDP). The profiler runs a block through this same function, so what is
profiled is what is trained.

- keep: autograd saves what it saves.
- selective: outputs of matmuls and attention are saved, the pointwise ops between them
  (norms, rotary embedding, SiLU, products, casts) are recomputed in backward
  (`create_selective_checkpoint_contexts`, the op list of torchtitan's selective AC).
- full: only the block's input is kept; the whole block is recomputed in backward.
- offload: every tensor the block saves for backward is copied to pinned host memory in forward
  and back to the device when backward needs it (saved-tensor hooks); accelerators only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

from steward.config import ConfigError, JobConfig
from steward.errors import StewardError

POLICIES = ("keep", "selective", "full", "offload")


def check_memory(cfg: JobConfig) -> None:
    """memory.policy against the device, the parallel layout and the model."""
    policy, t, p = cfg.memory.policy, cfg.train, cfg.parallel
    on_cpu = t.device == "cpu" or (t.device == "auto" and not torch.cuda.is_available())
    if policy == "offload" and on_cpu:
        raise ConfigError("memory.policy: offload moves saved activations from a GPU to host memory, which means "
                          "nothing when training on the CPU; use selective or full, or train on a GPU")
    if policy == "offload" and p.tp > 1:
        raise ConfigError("memory.policy: offload is not supported with parallel.tp > 1 (tensor-parallel activations); "
                          "use selective or full")
    if policy == "plan" and cfg.model.hf_path:
        raise ConfigError("memory.policy: plan needs a model.flavor (its shapes are profiled); with model.hf_path "
                          "choose keep, selective, full or offload")
    if policy == "plan" and p.pp > 1:
        raise ConfigError("memory.policy: plan does not model pipeline stages (parallel.pp > 1) yet; choose keep, "
                          "selective, full or offload")

_aten = torch.ops.aten


def _sac_save_ops() -> set:
    """Ops whose outputs `selective` saves: matmuls and every fused attention kernel (CPU and CUDA),
    and the tensor-parallel reduce-scatter (recomputing it would repeat a collective)."""
    names = [
        (_aten, "mm"), (_aten, "addmm"), (_aten, "bmm"),
        (_aten, "_scaled_dot_product_flash_attention"),
        (_aten, "_scaled_dot_product_flash_attention_for_cpu"),
        (_aten, "_scaled_dot_product_efficient_attention"),
        (_aten, "_scaled_dot_product_cudnn_attention"),
        (_aten, "_scaled_dot_product_fused_attention_overrideable"),
        (torch.ops._c10d_functional, "reduce_scatter_tensor"),
    ]
    return {getattr(ns, name).default for ns, name in names if hasattr(ns, name)}


SAC_SAVE_OPS = frozenset(_sac_save_ops())


class MemoryPolicyError(StewardError):
    """A rematerialization policy that cannot be applied here (names memory.policy)."""


def _selective_policy(ctx, func, *args, **kwargs) -> CheckpointPolicy:
    return CheckpointPolicy.MUST_SAVE if func in SAC_SAVE_OPS else CheckpointPolicy.PREFER_RECOMPUTE


def selective_context():
    """The context pair torch.utils.checkpoint takes as context_fn for `selective`."""
    return create_selective_checkpoint_contexts(_selective_policy)


def _storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


class _Offload:
    """Pack/unpack hooks that move a block's saved activations to host memory.

    Parameters, buffers and tensor arguments that need no gradient (the rotary table) stay where
    they are: they are alive anyway, and copying them would only cost time.
    """

    def __init__(self, block: nn.Module, inputs: Iterable[Any]):
        keep = {_storage_key(t) for t in block.parameters()}
        keep |= {_storage_key(t) for t in block.buffers()}
        keep |= {_storage_key(a) for a in inputs if isinstance(a, torch.Tensor) and not a.requires_grad}
        self.keep = keep

    def pack(self, t: torch.Tensor):
        if t.device.type == "cpu" or _storage_key(t) in self.keep:
            return t
        # pinned host memory: the copy back in backward can run asynchronously
        host = torch.empty(t.size(), dtype=t.dtype, layout=t.layout, pin_memory=True)
        host.copy_(t)
        return (t.device, host)

    @staticmethod
    def unpack(packed):
        if isinstance(packed, torch.Tensor):
            return packed
        device, host = packed
        return host.to(device, non_blocking=True)


def run_with_policy(fn: Callable[..., Any], policy: str, block: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """Call `fn(*args, **kwargs)` (the block's original forward) under `policy`."""
    if policy == "keep":
        return fn(*args, **kwargs)
    if policy == "full":
        # no RNG state to restore: the blocks have no dropout (and torchtitan does the same)
        return checkpoint(fn, *args, use_reentrant=False, preserve_rng_state=False, **kwargs)
    if policy == "selective":
        return checkpoint(fn, *args, use_reentrant=False, preserve_rng_state=False,
                          context_fn=selective_context, **kwargs)
    if policy == "offload":
        hooks = _Offload(block, tree_flatten((args, kwargs))[0])
        with torch.autograd.graph.saved_tensors_hooks(hooks.pack, hooks.unpack):
            return fn(*args, **kwargs)
    raise MemoryPolicyError(f"memory.policy: unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")


def apply_policy(block: nn.Module, policy: str) -> nn.Module:
    """Make `block` run under `policy` from now on (in place; returns the block).

    Applying again replaces the earlier policy, never stacks on it.
    """
    if policy not in POLICIES:
        raise MemoryPolicyError(f"memory.policy: unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    original = block.__dict__.pop("_steward_forward", None)
    block.__dict__.pop("forward", None)
    if original is None:
        original = block.forward  # the class's forward, bound to this block
    block.remat_policy = policy
    if policy == "keep":
        return block
    block._steward_forward = original
    block.forward = functools.partial(run_with_policy, original, policy, block)
    return block


def apply_policies(blocks: list[nn.Module], policies: list[str], device: torch.device | str) -> None:
    """One policy per block, in order; offload is refused off accelerators."""
    if len(blocks) != len(policies):
        raise MemoryPolicyError(f"memory: {len(policies)} policies for {len(blocks)} blocks")
    if "offload" in policies and torch.device(device).type == "cpu":
        raise MemoryPolicyError(
            "memory.policy: offload moves saved activations from an accelerator to host memory, which "
            "means nothing when training on the CPU; use selective or full (or train on a GPU)"
        )
    for block, policy in zip(blocks, policies):
        apply_policy(block, policy)


def policy_of(block: nn.Module) -> str:
    """The policy a block runs under ('keep' when none was applied)."""
    return getattr(block, "remat_policy", "keep")
