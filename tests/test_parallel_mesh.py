"""The 4-D mesh: degrees validated once (with one-line errors naming the key), node-aware placement,
and the mesh built for real in 4 gloo processes on an emulated 2-node topology."""

import itertools
import os
import random

import pytest
import torch
import torch.distributed as dist

from _multiproc import free_ports, spawn
from steward.config import ConfigError, load_config
from steward.parallel.mesh import MESH_DIMS, ParallelDims, groups, placement, validate_world
from steward.train.checks import check_job


def cfg(*flags):
    return load_config(None, ["--model.flavor", "debug", "--train.batch_size", "8", "--train.seq_len", "32", *flags])


def test_resolved_degrees_and_old_api():
    d = ParallelDims.from_config(cfg("--parallel.tp", "2"), 8)
    assert (d.pp, d.dp_replicate, d.dp_shard, d.tp, d.dp, d.strategy) == (1, 1, 4, 2, 4, "fsdp")
    d = ParallelDims.from_config(cfg("--parallel.dp_replicate", "2"), 2)  # the 2-D era's call still works
    assert (d.dp, d.strategy, d.grad_accum, d.uses_fsdp) == (2, "ddp", 1, False)
    d = ParallelDims.from_config(cfg("--parallel.dp_replicate", "2", "--parallel.tp", "2"), 4)
    assert d.strategy == "ddp" and d.uses_fsdp  # DDP cannot take DTensors: FSDP2 replicates instead
    d = ParallelDims.from_config(cfg("--parallel.pp", "2"), 4)
    # per-rank batch 4 split into pp = 2 micro-batches by default
    assert (d.pp, d.dp_shard, d.grad_accum) == (2, 2, 2)
    assert ParallelDims.from_config(cfg(), 1).strategy == "single"


@pytest.mark.parametrize("flags, world, local, key", [
    (["--parallel.tp", "2", "--parallel.dp_shard", "3"], 4, None, "world size is 4"),
    (["--parallel.tp", "3"], 6, None, "parallel.tp"),  # 3 does not divide 4 heads
    (["--parallel.tp", "4", "--model.flavor", "gpt2-small"], 4, 2, "parallel.tp: 4 does not fit the 2 processes of a node"),
    (["--parallel.pp", "3"], 3, None, "parallel.pp: 3 stages exceed the 2 layers"),
    (["--parallel.tp", "2", "--train.seq_len", "31"], 2, None, "train.seq_len"),
    (["--parallel.dp_replicate", "3"], 3, None, "train.batch_size"),
    (["--parallel.pp", "2", "--train.micro_batch_size", "4"], 4, None, "fewer than the parallel.pp"),
    (["--parallel.tp", "0"], 1, None, "parallel.tp: must be >= 1"),
    (["--parallel.shard_optimizer", "true"], 2, None, "parallel.shard_optimizer: shards AdamW's state over plain "
     "DDP replicas, but this layout is dp_replicate 1 x dp_shard 2"),
    (["--parallel.shard_optimizer", "true", "--parallel.dp_replicate", "2", "--parallel.tp", "2"], 4, None,
     "parallel.shard_optimizer"),
    (["--parallel.shard_optimizer", "true"], 1, None, "set parallel.dp_replicate to the world size"),
    (["--parallel.shard_gradients", "true", "--parallel.dp_replicate", "2"], 2, None,
     "parallel.shard_gradients: shards the gradients over the ranks that own the optimizer state; set "
     "parallel.shard_optimizer true"),
    (["--parallel.shard_gradients", "true", "--parallel.shard_optimizer", "true", "--parallel.dp_replicate", "2",
      "--comm.compressor", "powersgd"], 2, None, "which gradient compression (comm.compressor, comm.hierarchical)"),
    (["--parallel.shard_gradients", "true", "--parallel.shard_optimizer", "true", "--parallel.dp_replicate", "2",
      "--train.task", "classify"], 2, None, "drop it for train.task classify"),
    # the fix offered must not lead into the shard_gradients error (which asks for shard_optimizer back)
    (["--parallel.shard_gradients", "true", "--parallel.shard_optimizer", "true"], 1, None,
     "or drop parallel.shard_optimizer and parallel.shard_gradients"),
])
def test_bad_degrees_give_one_line_errors(flags, world, local, key):
    with pytest.raises(ConfigError) as e:
        check_job(cfg(*flags), world, local)
    assert key in str(e.value) and "\n" not in str(e.value)


def test_cross_node_tp_only_when_forced():
    c = cfg("--parallel.tp", "4", "--parallel.tp_across_nodes", "true", "--model.flavor", "gpt2-small")
    assert validate_world(c, 4, 2) == (1, 1, 1, 1)


def _assert_tp_inside_nodes(shape, node_of_rank):
    ranks = placement(shape, node_of_rank)
    for g in groups(shape, ranks, "tp"):
        assert len({node_of_rank[r] for r in g}) == 1, g
    return ranks


def test_placement_keeps_tp_then_dp_shard_in_a_node():
    # 2 nodes x 2 processes (local world size 2), tp 2 x dp_shard 2: tp inside nodes, dp_shard across
    shape = (1, 1, 2, 2)
    ranks = _assert_tp_inside_nodes(shape, [0, 0, 1, 1])
    assert groups(shape, ranks, "tp") == [[0, 1], [2, 3]]
    assert groups(shape, ranks, "dp_shard") == [[0, 2], [1, 3]]
    # a launcher that numbered ranks round-robin over the nodes: placement follows the nodes, not ranks
    ranks = _assert_tp_inside_nodes(shape, [0, 1, 0, 1])
    assert groups(shape, ranks, "tp") == [[0, 2], [1, 3]]
    # 4 nodes x 4: tp 2 x dp_shard 2 fill a node; dp_replicate and pp cross nodes
    shape = (2, 2, 2, 2)
    nodes = [r // 4 for r in range(16)]
    ranks = _assert_tp_inside_nodes(shape, nodes)
    for g in groups(shape, ranks, "dp_shard"):
        assert len({nodes[r] for r in g}) == 1
    for dim in ("dp_replicate", "pp"):
        assert all(len({nodes[r] for r in g}) == 2 for g in groups(shape, ranks, dim))


def test_placement_property_over_random_node_numberings():
    rng = random.Random(0)
    for nodes, per_node in itertools.product((2, 3, 4), (2, 4, 8)):
        world = nodes * per_node
        for tp in (t for t in (1, 2, 4, 8) if per_node % t == 0):
            node_of_rank = [r // per_node for r in range(world)]
            rng.shuffle(node_of_rank)
            rest = world // tp
            shard = next(s for s in (4, 2, 1) if rest % s == 0)
            _assert_tp_inside_nodes((1, rest // shard, shard, tp), node_of_rank)


def _mesh_worker(rank, world, port, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        dims = ParallelDims(dp_replicate=1, dp_shard=2, world_size=4, grad_accum=1, tp=2)
        emulated_nodes = [0, 1, 0, 1]  # local world size 2, ranks numbered round-robin
        mesh = dims.build_mesh("cpu", node_of_rank=emulated_nodes)
        tp_group = dist.get_process_group_ranks(mesh["tp"].get_group())
        # the groups really talk: the tp all-reduce sums exactly the two ranks of this node
        t = torch.tensor([float(rank)])
        dist.all_reduce(t, group=mesh["tp"].get_group())
        queue.put((rank, tuple(mesh.mesh_dim_names), sorted(tp_group), t.item()))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_mesh_in_four_processes_on_emulated_two_nodes():
    (port,) = free_ports(1)
    got = sorted(spawn(_mesh_worker, (4, port), nprocs=4))
    for rank, names, tp_group, total in got:
        assert names == MESH_DIMS
        assert tp_group == ([0, 2] if rank % 2 == 0 else [1, 3])  # same emulated node
        assert total == sum(tp_group)
