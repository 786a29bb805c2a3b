"""Where compression applies: DDP communication hooks, and the replicate (inter-node) all-reduce of
HSDP with FSDP2.

FSDP2's native HSDP runs its replicate all-reduce itself, uncompressed; its `set_all_reduce_hook`
only runs after it. So with a compressor, HSDP is built as FSDP2 on the dp_shard sub-mesh (the
reduce-scatter inside the shard group stays FSDP2's own), and the hook, called with each
reduce-scatter output, averages it across dp_replicate through the compressor: only the traffic
that crosses replicas (nodes, when dp_shard is the node) is compressed. Without a compressor,
native HSDP is left as it is and the hook only counts bytes.

`GradSync` is built once per run (`build_grad_sync`), handed to `parallel.apply_data_parallel`,
which calls `attach_ddp` / `attach_fsdp`, and told about each finished step with `end_step`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from steward.comm.accounting import CommGroup, Ledger
from steward.comm.compressors import Compressor, NoCompression, build_compressor
from steward.comm.hierarchical import (
    Topology,
    build_node_groups,
    check_comm_layout,
    hierarchical_all_reduce_mean,
)
from steward.config import JobConfig
from steward.config.job import Comm

_COUNTERS = ("intra", "inter", "intra_uncompressed", "inter_uncompressed")


class GradSync:
    """Gradient aggregation of one run: compressor, groups, warm-up and byte accounting.

    `step` counts finished optimizer steps; steps before comm.warmup_steps send uncompressed."""

    def __init__(self, cfg: Comm, mode: str, mesh: Any, topology: Topology, device_type: str = "cpu",
                 seed: int = 0):
        self.cfg = cfg
        self.mode = mode
        """'ddp' (a DDP module), 'fsdp' (FSDP2, no replicas) or 'hsdp' (FSDP2 with replicas)."""
        self.topology = topology
        # where the per-step byte counters are summed: NCCL reduces only CUDA tensors
        self.device = torch.device("cuda", torch.cuda.current_device()) if device_type == "cuda" else torch.device(
            device_type)
        self.compressor: Compressor = build_compressor(cfg, seed)
        self.exact = NoCompression(cfg, seed)
        self.ledger = Ledger(topology.node_of)
        self.step = 0
        self.totals = dict.fromkeys(_COUNTERS, 0)
        self._names: dict[int, str] = {}
        self.replicate = CommGroup.of(mesh["dp_replicate"].get_group()) if mode in ("ddp", "hsdp") else None
        self.shard = CommGroup.of(mesh["dp_shard"].get_group()) if mode in ("fsdp", "hsdp") else None
        self.intra = self.inter = None
        if cfg.hierarchical:
            self.intra, self.inter = build_node_groups(device_type, topology)

    # ---- what the parallel layer asks -----------------------------------------------------------

    @property
    def owns_replicate_all_reduce(self) -> bool:
        """HSDP's replicate all-reduce runs here (FSDP2 then shards over dp_shard only)."""
        return self.mode == "hsdp" and self.cfg.compressor != "none"

    @property
    def compressing(self) -> bool:
        return self.cfg.compressor != "none" and self.step >= self.cfg.warmup_steps

    def attach_ddp(self, ddp: nn.Module) -> None:
        self._names = {id(p): n for n, p in ddp.module.named_parameters()}
        # unannotated on purpose: DDP inspects the hook's annotations, which postponed evaluation
        # (from __future__ import annotations) turns into strings that it rejects
        def hook(state, bucket):
            return self._ddp_hook(state, bucket)

        ddp.register_comm_hook(None, hook)

    def attach_fsdp(self, model: nn.Module) -> None:
        from torch.distributed.fsdp import FSDPModule

        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.set_all_reduce_hook(_FsdpHook(self, module))

    # ---- the hooks ------------------------------------------------------------------------------

    def _ddp_hook(self, _state: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        group = self.replicate
        buffer = bucket.buffer()
        if not self.cfg.hierarchical and not self.compressing:
            # exactly DDP's built-in reduction: divide, then sum (bit for bit the same gradients)
            buffer.div_(group.size)
            fut = self.ledger.all_reduce(buffer, group, baseline=True, async_op=True).get_future()
            return fut.then(lambda f: f.value()[0])
        named = [(self._names[id(p)], g) for p, g in zip(bucket.parameters(), bucket.gradients())]
        compressor = self.compressor if self.compressing else self.exact
        if self.cfg.hierarchical:
            hierarchical_all_reduce_mean(named, self.intra, self.inter, compressor, self.ledger)
        else:
            compressor.all_reduce_mean(named, group, self.ledger)
        fut: torch.futures.Future[torch.Tensor] = torch.futures.Future()
        fut.set_result(buffer)
        return fut

    def fsdp_reduce(self, module: nn.Module, reduce_output: torch.Tensor) -> None:
        """Called by FSDP2 with a module's reduce-scatter output (native HSDP: after its all-reduce)."""
        shard = self.shard
        # FSDP2's own reduce-scatter: the input is the whole group's padded gradients
        self.ledger.account("reduce_scatter", reduce_output.numel() * shard.size, reduce_output.element_size(),
                            shard)
        if self.mode != "hsdp":
            return
        if not self.owns_replicate_all_reduce:  # native HSDP has all-reduced it already
            self.ledger.account("all_reduce", reduce_output.numel(), reduce_output.element_size(), self.replicate)
            return
        compressor = self.compressor if self.compressing else self.exact
        compressor.all_reduce_mean(_fsdp_views(module, reduce_output), self.replicate, self.ledger)

    # ---- checkpoints ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """This rank's state: steps taken (warm-up), byte totals, and the compressor's buffers."""
        return {"step": self.step, "totals": dict(self.totals), "compressor": self.cfg.compressor,
                "compressor_state": self.compressor.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.totals = {k: int(state["totals"].get(k, 0)) for k in _COUNTERS}
        # another compressor's buffers mean nothing to this one: it starts fresh
        if state.get("compressor") == self.cfg.compressor:
            self.compressor.load_state_dict(state["compressor_state"], self.device)

    # ---- steps ----------------------------------------------------------------------------------

    def end_step(self) -> dict[str, Any]:
        """Close a step: the bytes every rank sent in it, summed over ranks (a collective: call on
        every rank), as metrics.jsonl figures."""
        return self.start_end_step()()

    def start_end_step(self) -> Callable[[], dict[str, Any]]:
        """`end_step` in two halves: the sum over ranks starts now (once the step's gradients are
        reduced), and the returned call waits for it and closes the step, so that the collective
        overlaps the optimizer step."""
        mine = self.ledger.take_step()
        counts = torch.tensor([mine[k] for k in _COUNTERS], dtype=torch.int64, device=self.device)
        work = dist.all_reduce(counts, async_op=True) if dist.is_initialized() else None

        def finish() -> dict[str, Any]:
            if work is not None:
                work.wait()
            summed = counts.tolist()
            figures: dict[str, Any] = {f"comm_bytes_{k}": int(v) for k, v in zip(_COUNTERS, summed)}
            for k, v in zip(_COUNTERS, summed):
                self.totals[k] += int(v)
            figures["comm_compressed"] = self.compressing
            self.step += 1
            return figures

        return finish

    def summary(self) -> dict[str, Any]:
        t = self.totals
        return {
            "comm_compressor": self.cfg.compressor,
            "comm_hierarchical": self.cfg.hierarchical,
            "comm_ranks_per_node": self.topology.ranks_per_node,
            **{f"comm_bytes_{k}_total": v for k, v in t.items()},
            "comm_inter_reduction": t["inter_uncompressed"] / t["inter"] if t["inter"] else None,
        }


class _FsdpHook:
    """FSDP2's all-reduce hook takes only the tensor; this carries the module along."""

    def __init__(self, sync: GradSync, module: nn.Module):
        self.sync, self.module = sync, module

    def __call__(self, reduce_output: torch.Tensor) -> None:
        self.sync.fsdp_reduce(self.module, reduce_output)


def _fsdp_views(module: nn.Module, reduce_output: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Split a module's flat reduce-scatter output into its parameters' padded shards (FSDP2 lays
    them out in parameter order, each dim-0 padded to a multiple of the shard size)."""
    # FSDP2 exposes no public accessor for a group's parameter layout; this private attribute is
    # what foreach_reduce itself iterates over
    (group,) = module._get_fsdp_state()._fsdp_param_groups  # one group: set_all_reduce_hook requires it
    views, offset = [], 0
    for fp in group.fsdp_params:
        size = fp.padded_sharded_param_size
        numel = size.numel()
        views.append((f"{fp._param_fqn}#shard", reduce_output[offset : offset + numel].view(size)))
        offset += numel
    if offset != reduce_output.numel():
        raise RuntimeError(
            f"comm: FSDP2 reduced {reduce_output.numel()} gradient elements but the module's parameters hold "
            f"{offset}; compression needs every parameter to receive a gradient in every step"
        )
    return views


def build_grad_sync(cfg: JobConfig, dims: Any, mesh: Any, device_type: str,
                    local_world_size: int | None = None) -> GradSync | None:
    """The run's GradSync for the layout `dims` (a ParallelDims), or None without data parallelism."""
    if dims.strategy == "single" or cfg.parallel.shard_gradients:  # ZeRO-2 reduces its gradients itself
        return None
    topology = check_comm_layout(cfg, dims.dp_replicate, dims.dp_shard, dims.world_size, local_world_size)
    if dims.uses_fsdp:  # FSDP2 also replicates when tp/pp are on (DDP takes no DTensor parameters)
        mode = "hsdp" if dims.dp_replicate > 1 else "fsdp"
    else:
        mode = "ddp"
    return GradSync(cfg.comm, mode, mesh, topology, device_type, seed=cfg.train.seed)
