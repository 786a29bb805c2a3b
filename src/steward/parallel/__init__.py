"""Parallelism: named meshes and how a model is put onto them."""

from steward.parallel.apply import apply_data_parallel, blocks_of, set_gradient_sync
from steward.parallel.mesh import ParallelDims, dp_rank

__all__ = ["ParallelDims", "apply_data_parallel", "blocks_of", "dp_rank", "set_gradient_sync"]
