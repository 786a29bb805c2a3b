"""ZeRO-2 (steward.parallel.zero) in 2 gloo processes: every owner ends with the mean of the ranks'
gradients (float64, against the sum computed from both ranks' inputs), the other rank holds none, the
buckets follow bucket_bytes, and a parameter left without a gradient is a clear error."""

import os

import pytest
import torch

from _multiproc import free_ports, spawn

pytestmark = pytest.mark.slow


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()


def _batch(rank: int) -> torch.Tensor:
    return torch.linspace(-1, 1, 24, dtype=torch.float64).reshape(4, 6) * (rank + 1)


def _worker(rank: int, port: int, bucket_bytes: int, skip_last: bool, results) -> None:
    import torch.distributed as dist
    from torch.distributed.optim import ZeroRedundancyOptimizer

    from steward.parallel.zero import ShardedGradients

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        model = ShardedGradients(_model(), dist.group.WORLD, bucket_bytes=bucket_bytes)
        opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.SGD, lr=0.1)
        model.bind(opt)
        inner = model.module
        out = inner[1](inner[0](_batch(rank))) if skip_last else model(_batch(rank))
        out.square().sum().backward()
        # the gradient bytes alive at the end of backward: what the reductions hold and any .grad left
        held = sum(f.numel() * f.element_size() for *_, f, _ in model._pending) + sum(
            p.grad.numel() * p.grad.element_size() for p in inner.parameters() if p.grad is not None)
        try:
            model.finish()
        except Exception as e:  # noqa: BLE001 - the test checks its type
            results.put((rank, type(e), str(e)))
            return
        owners = opt._param_to_rank
        # plain lists: a tensor on the queue would live in memory this process frees when it exits
        grads = {i: (owners[p], None if p.grad is None else p.grad.tolist()) for i, p in enumerate(inner.parameters())}
        results.put((rank, grads, len(model._buckets), held))
    finally:
        dist.destroy_process_group()


def _reference() -> list[torch.Tensor]:
    """The mean over the two ranks' batches of the gradients, in one process."""
    total = None
    for rank in range(2):
        m = _model()
        m(_batch(rank)).square().sum().backward()
        g = [p.grad / 2 for p in m.parameters()]
        total = g if total is None else [a + b for a, b in zip(total, g)]
    return total


@pytest.mark.parametrize("bucket_bytes, buckets", [(2**20, 2), (1, 4)], ids=["one-bucket-per-owner", "one-per-param"])
def test_each_owner_gets_the_mean_gradient_and_the_other_rank_none(bucket_bytes, buckets):
    (port,) = free_ports(1)
    got = sorted(spawn(_worker, (port, bucket_bytes, False), nprocs=2, timeout=120), key=lambda r: r[0])
    want = _reference()
    param_bytes = sum(p.numel() * p.element_size() for p in _model().parameters())
    for rank, grads, n_buckets, held in got:
        assert n_buckets == buckets
        assert held == param_bytes  # one copy of the gradients over the ranks' buckets, not one more of its own
        for i, (owner, g) in grads.items():
            if owner == rank:
                torch.testing.assert_close(torch.tensor(g, dtype=torch.float64), want[i], rtol=1e-12, atol=0)
            else:
                assert g is None, (rank, i)
    assert {owner for _, grads, _, _ in got for owner, _ in grads.values()} == {0, 1}  # both ranks own some


def test_a_parameter_without_a_gradient_is_a_clear_error():
    """A StewardError on every rank: the CLI's worker prints it as one line (exit 2), not a traceback."""
    from steward.errors import StewardError

    (port,) = free_ports(1)
    got = spawn(_worker, (port, 1, True), nprocs=2, timeout=120)
    for _, kind, message in got:
        assert issubclass(kind, StewardError), kind
        assert "some parameters got no gradient" in message and "drop shard_gradients" in message
