"""Parallelism at run time: named meshes (mesh) and how a built model is put onto them (apply, tp,
pipeline). Which layout to run is decided by `steward.planning` (topology, cost model, layout planner,
simulator)."""

from steward.parallel.apply import (
    apply_data_parallel,
    apply_model_parallel,
    blocks_of,
    finish_gradient_sync,
    reshard_after_inference,
    set_gradient_sync,
)
from steward.parallel.mesh import MESH_DIMS, ParallelDims, dp_rank

__all__ = [
    "MESH_DIMS",
    "ParallelDims",
    "apply_data_parallel",
    "apply_model_parallel",
    "blocks_of",
    "dp_rank",
    "finish_gradient_sync",
    "reshard_after_inference",
    "set_gradient_sync",
]
