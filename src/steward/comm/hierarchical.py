"""Which ranks share a node, the layout checks that depend on it, and the hierarchical all-reduce:
reduce-scatter inside the node, all-reduce of the shard across nodes (compressed if configured),
all-gather inside the node. Only the middle step crosses nodes, carrying 1/ranks_per_node of the data.

Until the named N-D mesh with node-aware placement lands in `steward.parallel.mesh`, a node is
`comm.ranks_per_node` consecutive global ranks (default: LOCAL_WORLD_SIZE, what torchrun starts per
node), and data parallelism spans the whole world.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from steward.comm.accounting import CommGroup, Ledger
from steward.comm.compressors import Compressor
from steward.config import ConfigError, JobConfig


@dataclass(frozen=True)
class Topology:
    world_size: int
    ranks_per_node: int

    @property
    def num_nodes(self) -> int:
        return self.world_size // self.ranks_per_node

    def node_of(self, rank: int) -> int:
        return rank // self.ranks_per_node


def resolve_ranks_per_node(cfg: JobConfig, world_size: int, local_world_size: int | None = None) -> int:
    """comm.ranks_per_node, else the launcher's processes per node (LOCAL_WORLD_SIZE), else the whole
    world (`steward train --nproc-per-node N` runs on one host)."""
    if cfg.comm.ranks_per_node:
        return cfg.comm.ranks_per_node
    return local_world_size or int(os.environ.get("LOCAL_WORLD_SIZE", world_size))


def check_comm_layout(cfg: JobConfig, dp_replicate: int, dp_shard: int, world_size: int,
                      local_world_size: int | None = None) -> Topology:
    """The [comm] checks that depend on the parallel layout (parallel.mesh.validate_world calls this);
    one-line ConfigErrors naming the key and the fix."""
    c, p = cfg.comm, cfg.parallel
    rpn = resolve_ranks_per_node(cfg, world_size, local_world_size)
    if world_size % rpn:
        raise ConfigError(
            f"comm.ranks_per_node: {rpn} does not divide the world size {world_size}; "
            "give the number of processes on each node"
        )
    if c.compressor != "none" or c.hierarchical:
        what = f"compressor {c.compressor!r}" if c.compressor != "none" else "the hierarchical all-reduce"
        key = "comm.compressor" if c.compressor != "none" else "comm.hierarchical"
        if p.tp > 1 or p.pp > 1:
            raise ConfigError(
                f"{key}: the {what} works on data-parallel layouts only for now, not with parallel.tp {p.tp} / "
                f"parallel.pp {p.pp}; set parallel.tp 1 and parallel.pp 1, or {key} to its default"
            )
        if dp_replicate < 2:
            raise ConfigError(
                f"{key}: the {what} acts on the all-reduce across data-parallel replicas, but parallel.dp_replicate is "
                f"{dp_replicate}; set parallel.dp_replicate > 1 (DDP, or HSDP with parallel.dp_shard > 1)"
            )
    if c.hierarchical:
        if dp_shard > 1:
            raise ConfigError(
                "comm.hierarchical: HSDP (parallel.dp_shard > 1) already reduce-scatters inside the shard group "
                "and all-reduces across replicas; set comm.hierarchical false"
            )
        if rpn < 2 or world_size // rpn < 2:
            raise ConfigError(
                f"comm.hierarchical: needs at least 2 nodes of at least 2 ranks, but comm.ranks_per_node is {rpn} "
                f"of {world_size} ranks; set comm.ranks_per_node (e.g. {max(2, world_size // 2)}) or "
                "comm.hierarchical false"
            )
    return Topology(world_size, rpn)


def build_node_groups(device_type: str, topology: Topology) -> tuple[CommGroup, CommGroup]:
    """(intra-node group, inter-node group) of this rank, as the two dims of a DeviceMesh
    ('inter_node', 'intra_node'): ranks node*ranks_per_node + local, row-major like the launcher."""
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(
        device_type, (topology.num_nodes, topology.ranks_per_node), mesh_dim_names=("inter_node", "intra_node")
    )
    return CommGroup.of(mesh["intra_node"].get_group()), CommGroup.of(mesh["inter_node"].get_group())


@dataclass
class _Slot:
    rows: int
    rows_per_rank: int
    cols: int
    offset: int
    """Start of this tensor's chunk inside each rank's shard."""


def _layout(shapes: Sequence[torch.Size], parts: int) -> tuple[list[_Slot], int]:
    """Each tensor's rows split into `parts` equal blocks (the last padded), as FSDP shards dim 0,
    so every rank's shard holds whole rows: matrices stay matrices for low-rank compression."""
    slots, offset = [], 0
    for shape in shapes:
        rows = shape[0] if len(shape) else 1
        cols = math.prod(shape[1:]) if len(shape) > 1 else 1
        per = math.ceil(rows / parts)
        slots.append(_Slot(rows, per, cols, offset))
        offset += per * cols
    return slots, offset


def hierarchical_all_reduce_mean(
    named: Sequence[tuple[str, torch.Tensor]],
    intra: CommGroup,
    inter: CommGroup,
    compressor: Compressor,
    ledger: Ledger,
) -> None:
    """Replace each tensor by its mean over all ranks of intra x inter, crossing nodes only with
    this rank's 1/|intra| share, through `compressor`."""
    if not named:
        return
    parts = intra.size
    slots, shard_numel = _layout([t.shape for _, t in named], parts)
    ref = named[0][1]
    buf = ref.new_zeros(parts, shard_numel)
    for (_, t), s in zip(named, slots):
        padded = t.new_zeros(parts * s.rows_per_rank, s.cols)
        padded[: s.rows] = t.reshape(s.rows, s.cols)
        buf[:, s.offset : s.offset + s.rows_per_rank * s.cols] = padded.view(parts, -1)
    shard = ref.new_empty(shard_numel)
    ledger.reduce_scatter(shard, buf.view(-1), intra, baseline=True)
    shard.div_(parts)  # the node's mean; the inter-node mean of node means is the global mean
    views = [
        (f"{name}#{intra.index}", shard[s.offset : s.offset + s.rows_per_rank * s.cols].view(
            (s.rows_per_rank, s.cols) if len(t.shape) > 1 else (s.rows_per_rank,)))
        for (name, t), s in zip(named, slots)
    ]
    compressor.all_reduce_mean(views, inter, ledger)
    ledger.all_gather(buf.view(-1), shard, intra, baseline=True)
    for (_, t), s in zip(named, slots):
        block = buf[:, s.offset : s.offset + s.rows_per_rank * s.cols].reshape(parts * s.rows_per_rank, s.cols)
        t.copy_(block[: s.rows].view_as(t))
