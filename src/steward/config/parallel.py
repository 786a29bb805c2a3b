"""The sections that say how a job is spread over processes: `Parallel` (the layout) and `Comm` (how the
data-parallel gradients travel). Part of the config tree of `steward.config.job`, split off by size; the
conventions are job.py's (a docstring under every field, each section checks its own values)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from steward.config.choices import check_choices
from steward.config.constraints import PathName, Range, check_constraints, shown
from steward.errors import ConfigError

CompressorName = Literal["none", "fp16", "bf16", "int8", "topk", "powersgd"]
"""The names of steward.comm.compressors.COMPRESSORS (a test keeps the two equal)."""


@dataclass
class Parallel:
    dp_shard: Annotated[int, Range(-1, 2**20, note=" (-1: the rest of the world)")] = -1
    """Data-parallel degree that shards parameters, gradients and optimizer state (FSDP2).
    -1: whatever world size remains after pp, dp_replicate and tp."""

    dp_replicate: Annotated[int, Range(1, 2**20)] = 1
    """Data-parallel degree that replicates the model (DDP, or HSDP together with dp_shard > 1)."""

    backend: Literal["auto", "nccl", "gloo"] = "auto"
    """Process group backend: 'auto' (nccl on GPU, gloo on CPU), 'nccl' or 'gloo'."""

    tp: Annotated[int, Range(1, 2**20)] = 1
    """Tensor-parallel degree, with sequence parallel on the norms; must divide the heads and kv heads
    and train.seq_len, and stay inside a node unless parallel.tp_across_nodes."""

    pp: Annotated[int, Range(1, 2**20)] = 1
    """Pipeline-parallel degree (stages cross nodes; 1F1B schedule). Needs at least pp micro-batches per
    rank: with train.micro_batch_size 0 the per-rank batch is split into pp micro-batches."""

    tp_across_nodes: bool = False
    """Allow tensor-parallel groups larger than the processes of one node (slow: tp talks every layer)."""

    shard_optimizer: bool = False
    """ZeRO-1 on plain DDP (parallel.dp_replicate > 1, dp_shard 1, tp 1, pp 1): AdamW's moments are
    sharded over the replicas; each rank steps the parameters it owns and broadcasts them (torch's
    ZeroRedundancyOptimizer). Checkpoints hold the same state as without it: each rank writes its share."""

    shard_gradients: bool = False
    """ZeRO-2, with parallel.shard_optimizer: no DDP buckets; each final gradient is reduced onto the rank
    that owns its parameter and dropped elsewhere, so between steps a rank holds the parameters and its
    share of the moments only (steward.parallel.zero). Every parameter must get a gradient each step;
    no gradient compression (comm.*) and not with the classifier trainer (train.task classify)."""

    auto: bool = False
    """Let the planner choose tp, pp, dp_replicate, dp_shard, micro-batch size and recompute."""

    cluster: Annotated[str, PathName()] = ""
    """Cluster the planner assumes with parallel.auto: a preset name or cluster TOML file (`steward
    topology` lists presets). Empty: the running job, discovered (and calibrated if measured)."""

    def __post_init__(self) -> None:
        if self.dp_shard == 0 or self.dp_shard < -1:
            raise ConfigError(f"parallel.dp_shard: must be -1 (the rest of the world) or >= 1, "
                              f"got {shown(self.dp_shard)}")
        check_constraints(self)
        check_choices(self)


@dataclass
class Comm:
    compressor: CompressorName = "none"
    """Gradient compressor on the data-parallel all-reduce (none: the uncompressed all-reduce)."""

    rank: Annotated[int, Range(1, 2**16)] = 4
    """Rank of the PowerSGD approximation."""

    topk_fraction: Annotated[float, Range(0, 1, low_open=True, note=" (the fraction of entries top-k sends)")] = 0.01
    """Fraction of gradient entries top-k sends, in (0, 1]."""

    warmup_steps: Annotated[int, Range(0, 10**9)] = 0
    """Optimizer steps sent uncompressed before compression starts."""

    hierarchical: bool = False
    """Reduce-scatter inside the node, all-reduce the shard across nodes, all-gather inside the node."""

    ranks_per_node: Annotated[int, Range(0, 2**16, note=" (0: LOCAL_WORLD_SIZE)")] = 0
    """Processes per node: consecutive global ranks share a node (for hierarchical all-reduce and the
    intra/inter-node byte split). 0: LOCAL_WORLD_SIZE from the launcher."""

    def __post_init__(self) -> None:
        check_choices(self)
        check_constraints(self)
