"""Parallelism: the cluster (topology), named meshes (mesh), how a model is put onto them (apply, tp,
pipeline), and the planner and simulator that choose the layout (plan, simulate)."""

from steward.parallel.apply import apply_data_parallel, apply_model_parallel, blocks_of, set_gradient_sync
from steward.parallel.mesh import MESH_DIMS, ParallelDims, dp_rank

__all__ = [
    "MESH_DIMS",
    "ParallelDims",
    "apply_data_parallel",
    "apply_model_parallel",
    "blocks_of",
    "dp_rank",
    "set_gradient_sync",
]
