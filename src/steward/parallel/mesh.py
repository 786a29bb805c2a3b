"""Named device meshes. Degrees are validated once (`check_parallel` against the model, `validate_world`
against the world size); every other package asks for meshes by name: mesh["tp"], mesh["dp_shard"],
mesh["dp_replicate", "dp_shard"], mesh["pp"].

The mesh always has the four dims ("pp", "dp_replicate", "dp_shard", "tp"), size 1 where unused.
Placement: ranks are ordered node by node, then laid out row-major over those dims, so the
innermost dim, tp, takes consecutive ranks of one node, then dp_shard; dp_replicate and pp take the
outer strides and cross nodes. Tensor parallelism talks on every layer and must stay on the fast
intra-node links; data parallelism talks once per step and can cross nodes.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh

from steward.comm.hierarchical import check_comm_layout
from steward.config import ConfigError, JobConfig
from steward.models.gpt import FLAVORS

MESH_DIMS = ("pp", "dp_replicate", "dp_shard", "tp")


def check_parallel(cfg: JobConfig) -> None:
    """parallel.tp and parallel.pp against the model's heads and layers and train.seq_len (what can
    be checked before the world size is known)."""
    p, m, t = cfg.parallel, cfg.model, cfg.train
    if (p.tp > 1 or p.pp > 1) and m.hf_path:
        raise ConfigError("parallel.tp / parallel.pp: tensor and pipeline parallel need a model.flavor, not model.hf_path")
    if not m.hf_path:
        args = FLAVORS[m.flavor]
        if args.n_heads % p.tp or args.kv_heads % p.tp:
            raise ConfigError(
                f"parallel.tp: {p.tp} must divide the {args.n_heads} heads and {args.kv_heads} kv heads of "
                f"model.flavor {m.flavor!r}"
            )
        if p.pp > args.n_layers:
            raise ConfigError(f"parallel.pp: {p.pp} stages exceed the {args.n_layers} layers of model.flavor {m.flavor!r}")
    if t.seq_len % p.tp:
        raise ConfigError(
            f"train.seq_len: {t.seq_len} must be divisible by parallel.tp {p.tp} (sequence parallel splits the sequence)"
        )


def validate_world(cfg: JobConfig, world_size: int, local_world_size: int | None = None) -> tuple[int, int, int, int]:
    """Resolve the parallel degrees for `world_size` processes (`local_world_size` per node, when
    known); returns (dp_replicate, dp_shard, dp, grad_accum). pp x dp_replicate x dp_shard x tp must
    be the world size; with pp > 1, grad_accum is the number of pipeline micro-batches. The [comm]
    checks that depend on the layout run here too."""
    p, t = cfg.parallel, cfg.train
    rep, tp, pp = p.dp_replicate, p.tp, p.pp
    fixed = rep * tp * pp
    if world_size % fixed:
        raise ConfigError(
            f"parallel.dp_replicate x parallel.tp x parallel.pp = {rep} x {tp} x {pp} = {fixed} does not divide "
            f"the world size {world_size}"
        )
    shard = world_size // fixed if p.dp_shard == -1 else p.dp_shard
    if fixed * shard != world_size:
        # name only the degrees in play
        keys, values = ["dp_replicate", "dp_shard"], [rep, shard]
        if tp > 1 or pp > 1:
            keys, values = ["pp", "dp_replicate", "dp_shard", "tp"], [pp, rep, shard, tp]
        raise ConfigError(
            f"{' x '.join(f'parallel.{k}' for k in keys)} = {' x '.join(map(str, values))} = {fixed * shard}, "
            f"but the world size is {world_size}; make the product equal the number of processes"
        )
    if local_world_size and tp > 1 and local_world_size % tp and not p.tp_across_nodes:
        raise ConfigError(
            f"parallel.tp: {tp} does not fit the {local_world_size} processes of a node (tensor parallel talks on every "
            "layer and must stay inside a node); lower it, or set parallel.tp_across_nodes true"
        )
    if p.shard_optimizer and (rep == 1 or shard != 1 or tp > 1 or pp > 1):
        raise ConfigError(
            f"parallel.shard_optimizer: shards AdamW's state over plain DDP replicas, but this layout is "
            f"dp_replicate {rep} x dp_shard {shard} x tp {tp} x pp {pp}; set parallel.dp_replicate to the world size "
            "(FSDP2's dp_shard already shards the optimizer), or drop parallel.shard_optimizer"
            + (" and parallel.shard_gradients" if p.shard_gradients else "")
        )
    if p.shard_gradients and not p.shard_optimizer:
        raise ConfigError("parallel.shard_gradients: shards the gradients over the ranks that own the optimizer "
                          "state; set parallel.shard_optimizer true as well (ZeRO-2 is ZeRO-1 plus this)")
    if p.shard_gradients and (cfg.comm.compressor != "none" or cfg.comm.hierarchical):
        raise ConfigError("parallel.shard_gradients: reduces each gradient onto its owner, which gradient "
                          "compression (comm.compressor, comm.hierarchical) does not do; drop one of them")
    if p.shard_gradients and t.task == "classify":
        raise ConfigError("parallel.shard_gradients: the classifier's debiasing step needs every gradient on every "
                          "rank; drop it for train.task classify")
    dp = rep * shard
    if t.batch_size % dp:
        raise ConfigError(f"train.batch_size: {t.batch_size} is not divisible by the data-parallel degree {dp}")
    local = t.batch_size // dp
    if pp > 1 and not t.micro_batch_size and local % pp == 0:
        micro = local // pp  # the fewest micro-batches 1F1B accepts
    else:
        micro = t.micro_batch_size or local
    if local % micro:
        raise ConfigError(
            f"train.micro_batch_size: {micro} does not divide the per-rank batch {local} "
            f"(train.batch_size {t.batch_size} / {dp} ranks)"
        )
    if local // micro < pp:
        raise ConfigError(
            f"train.micro_batch_size: {local // micro} micro-batches per rank are fewer than the parallel.pp {pp} "
            f"pipeline stages (1F1B needs at least one per stage); lower train.micro_batch_size or raise train.batch_size"
        )
    check_comm_layout(cfg, rep, shard, world_size, local_world_size)
    return rep, shard, dp, local // micro


@dataclass
class ParallelDims:
    dp_replicate: int
    dp_shard: int
    world_size: int
    grad_accum: int
    """Micro-batches per optimizer step on each rank (with pp > 1: the pipeline's micro-batches)."""
    tp: int = 1
    pp: int = 1

    @classmethod
    def from_config(cls, cfg: JobConfig, world_size: int, local_world_size: int | None = None) -> ParallelDims:
        rep, shard, _, accum = validate_world(cfg, world_size, local_world_size)
        return cls(dp_replicate=rep, dp_shard=shard, world_size=world_size, grad_accum=accum,
                   tp=cfg.parallel.tp, pp=cfg.parallel.pp)

    @property
    def dp(self) -> int:
        return self.dp_replicate * self.dp_shard

    @property
    def model_parallel(self) -> bool:
        """Tensor or pipeline parallel: the model's parameters differ between ranks of one replica."""
        return self.tp > 1 or self.pp > 1

    @property
    def strategy(self) -> str:
        """The data-parallel strategy: 'single' (dp 1), 'ddp' (replicate only), 'fsdp' (shard only)
        or 'hsdp' (both)."""
        if self.dp == 1:
            return "single"
        if self.dp_shard == 1:
            return "ddp"
        return "fsdp" if self.dp_replicate == 1 else "hsdp"

    @property
    def uses_fsdp(self) -> bool:
        """FSDP2 wraps the model: sharding, or replication composed with tp/pp (DDP does not take
        DTensor parameters, so replication there is FSDP2 over a replicate x shard(1) mesh)."""
        return self.strategy in ("fsdp", "hsdp") or (self.strategy == "ddp" and self.model_parallel)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.pp, self.dp_replicate, self.dp_shard, self.tp)

    def build_mesh(self, device_type: str, node_of_rank: Sequence[int] | None = None) -> DeviceMesh | None:
        """The 4-D mesh over MESH_DIMS; None in one process. `node_of_rank` (rank -> node index)
        defaults to what the job's processes report (`discover_nodes`)."""
        if self.world_size == 1:
            return None
        if not dist.is_initialized():
            raise ConfigError("parallel: a world size above 1 needs torch.distributed initialised (use torchrun)")
        if node_of_rank is None:
            node_of_rank = discover_nodes()
        ranks = placement(self.shape, node_of_rank)
        return DeviceMesh(device_type, torch.tensor(ranks).reshape(self.shape), mesh_dim_names=MESH_DIMS)


def discover_nodes() -> list[int]:
    """Node index of every rank of the initialised default group (a collective). Nodes are told
    apart by torchrun's GROUP_RANK when set, else by host name."""
    key = os.environ.get("GROUP_RANK") or socket.gethostname()
    keys: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(keys, key)
    ids: dict[Any, int] = {}
    return [ids.setdefault(k, len(ids)) for k in keys]


def placement(shape: Sequence[int], node_of_rank: Sequence[int]) -> list[int]:
    """Ranks in mesh order (row-major over `shape`): all ranks of the first node, then the next, so
    inner mesh dims take ranks of one node. Ranks keep their order within a node."""
    world = 1
    for s in shape:
        world *= s
    if len(node_of_rank) != world:
        raise ConfigError(f"parallel: the mesh {tuple(shape)} needs {world} ranks, the job has {len(node_of_rank)}")
    return sorted(range(world), key=lambda r: (node_of_rank[r], r))


def groups(shape: Sequence[int], ranks: Sequence[int], dim: str) -> list[list[int]]:
    """The rank groups along mesh dim `dim` of the layout `ranks` (for checks and display)."""
    t = torch.tensor(list(ranks)).reshape(tuple(shape))
    i = MESH_DIMS.index(dim)
    return t.movedim(i, -1).reshape(-1, shape[i]).tolist()


def dp_rank(mesh: DeviceMesh | None) -> int:
    """This rank's index among all data-parallel ranks (replicate-major). Ranks that differ only in
    tp or pp coordinate get the same index: they work on the same data."""
    if mesh is None:
        return 0
    rep = mesh.get_local_rank("dp_replicate")
    shard = mesh.get_local_rank("dp_shard")
    return rep * mesh["dp_shard"].size() + shard
