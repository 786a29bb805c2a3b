"""Gradient aggregation: compressors with error feedback, hierarchical all-reduce, byte accounting."""

from steward.comm.accounting import CommGroup, Ledger, wire_elements
from steward.comm.compressors import COMPRESSORS, Compressor, build_compressor, register_compressor
from steward.comm.hierarchical import (
    Topology,
    build_node_groups,
    check_comm_layout,
    hierarchical_all_reduce_mean,
    resolve_ranks_per_node,
)
from steward.comm.hooks import GradSync, build_grad_sync

__all__ = [
    "COMPRESSORS",
    "CommGroup",
    "Compressor",
    "GradSync",
    "Ledger",
    "Topology",
    "build_compressor",
    "build_grad_sync",
    "build_node_groups",
    "check_comm_layout",
    "hierarchical_all_reduce_mean",
    "register_compressor",
    "resolve_ranks_per_node",
    "wire_elements",
]
