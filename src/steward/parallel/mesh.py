"""Named device meshes. Degrees are validated once here; every other package asks for meshes by name."""

from __future__ import annotations

from dataclasses import dataclass

import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

from steward.config import ConfigError, JobConfig, validate_world


@dataclass
class ParallelDims:
    dp_replicate: int
    dp_shard: int
    world_size: int
    grad_accum: int
    """Micro-batches per optimizer step on each rank."""

    @classmethod
    def from_config(cls, cfg: JobConfig, world_size: int) -> ParallelDims:
        rep, shard, _, accum = validate_world(cfg, world_size)
        return cls(dp_replicate=rep, dp_shard=shard, world_size=world_size, grad_accum=accum)

    @property
    def dp(self) -> int:
        return self.dp_replicate * self.dp_shard

    @property
    def strategy(self) -> str:
        """'single', 'ddp' (replicate only), 'fsdp' (shard only) or 'hsdp' (both)."""
        if self.world_size == 1:
            return "single"
        if self.dp_shard == 1:
            return "ddp"
        return "fsdp" if self.dp_replicate == 1 else "hsdp"

    def build_mesh(self, device_type: str) -> DeviceMesh | None:
        """The data-parallel mesh with dims ('dp_replicate', 'dp_shard'); None in one process."""
        if self.world_size == 1:
            return None
        if not dist.is_initialized():
            raise ConfigError("parallel: a world size above 1 needs torch.distributed initialised (use torchrun)")
        return init_device_mesh(
            device_type, (self.dp_replicate, self.dp_shard), mesh_dim_names=("dp_replicate", "dp_shard")
        )


def dp_rank(mesh: DeviceMesh | None) -> int:
    """This rank's index among all data-parallel ranks (replicate-major)."""
    if mesh is None:
        return 0
    rep = mesh.get_local_rank("dp_replicate")
    shard = mesh.get_local_rank("dp_shard")
    return rep * mesh.size(1) + shard
