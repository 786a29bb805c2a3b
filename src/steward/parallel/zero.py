"""ZeRO-2 for plain data parallel (`parallel.shard_gradients`): the gradients sharded like the optimizer.

With ZeRO-1 (`parallel.shard_optimizer`) each rank steps only the parameters it owns, yet DDP still
all-reduces every gradient into full-size buckets that stay allocated between steps. Here there is no
DDP: once a parameter's gradient is final (the last micro-batch's backward has accumulated it), it is
reduced (summed, each rank's share divided by the group size first, as DDP does) onto the rank that owns
that parameter in the sharded optimizer, and the other ranks drop it. Gradients travel in flat buckets of
one owner's parameters (at most BUCKET_BYTES, as DDP's 25 MiB), each sent as soon as its last gradient is
final, overlapping the rest of backward: one collective per parameter cost 14% of the CPU time of a
tiny model's step on gloo, against about 2 per step here.
The owner steps it and broadcasts the new value (torch's ZeroRedundancyOptimizer does both). Between two
steps a rank holds the parameters and its share of AdamW's moments, nothing else: the state DeepSpeed
ZeRO stage 2 keeps, on torch.distributed alone (Rajbhandari et al. 2020, "ZeRO", section 5.2).

Every parameter must get a gradient in every step (DDP's default contract, without
find_unused_parameters): the reductions are collectives that every rank issues in the same order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from steward.errors import ConfigError

BUCKET_BYTES = 25 * 2**20
"""Largest flat bucket of gradients one reduction sends (DDP's default bucket_cap_mb, 25)."""


class ShardedGradients(nn.Module):
    """Wraps a replicated model (like DDP, `.module` is the model): same start on every rank, and each
    final gradient reduced onto its owner. `bind` gives it the sharded optimizer's parameter owners;
    `finish` (before clipping and the step) waits for the reductions and hands each owner its sums."""

    def __init__(self, module: nn.Module, group: Any, bucket_bytes: int = BUCKET_BYTES):
        super().__init__()
        self.module = module
        self.group = group
        self.size = dist.get_world_size(group)
        self.rank = dist.get_rank(group)
        self.bucket_bytes = bucket_bytes
        self._sync = True
        self._buckets: list[tuple[int, list[nn.Parameter]]] = []
        self._bucket_of: dict[nn.Parameter, int] = {}
        self._ready: list[int] = []
        self._reported = 0
        self._pending: list[tuple[int, list[nn.Parameter], torch.Tensor, Any]] = []
        with torch.no_grad():  # every rank starts from rank 0's weights (DDP does the same)
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t, dist.get_global_rank(group, 0), group=group)
        for p in module.parameters():
            if p.requires_grad:
                p.register_post_accumulate_grad_hook(self._ready_grad)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def bind(self, optimizer: Any) -> None:
        """Take the owners from a torch ZeroRedundancyOptimizer over this group (its `_param_to_rank`,
        a private property that its own step and state_dict rely on) and lay out the buckets: each
        owner's parameters in reverse order (backward finishes the last layers first), cut at
        bucket_bytes."""
        owners = optimizer._param_to_rank
        trained = [p for p in self.module.parameters() if p.requires_grad]
        if any(p not in owners for p in trained) or optimizer.process_group is not self.group:
            raise ValueError("parallel.shard_gradients: the optimizer must shard exactly this model's parameters "
                             "over the data-parallel group (build it with train.optim.build_optimizer(shard_group))")
        self._buckets = []
        for owner in range(self.size):
            bucket: list[nn.Parameter] = []
            size = 0
            for p in reversed(trained):
                if owners[p] != owner:
                    continue
                bucket.append(p)
                size += p.numel() * p.element_size()
                if size >= self.bucket_bytes:
                    self._buckets.append((owner, bucket))
                    bucket, size = [], 0
            if bucket:
                self._buckets.append((owner, bucket))
        self._bucket_of = {p: i for i, (_, params) in enumerate(self._buckets) for p in params}
        self._ready = [0] * len(self._buckets)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate gradients locally (the micro-batches before the last)."""
        self._sync = False
        try:
            yield
        finally:
            self._sync = True

    def _ready_grad(self, p: nn.Parameter) -> None:
        if not self._sync:
            return
        if not self._buckets:
            raise RuntimeError("parallel.shard_gradients: a backward ran before the optimizer was bound "
                               "(ShardedGradients.bind)")
        i = self._bucket_of[p]
        self._ready[i] += 1
        self._reported += 1
        owner, params = self._buckets[i]
        if self._ready[i] < len(params):
            return
        # the bucket is complete: the same moment on every rank, as backward runs the same graph
        self._ready[i] = 0
        flat = torch.cat([q.grad.reshape(-1) for q in params]).div_(self.size)
        for q in params:  # packed: the owner's gradients become views of the sums in `finish`
            q.grad = None
        work = dist.reduce(flat, dist.get_global_rank(self.group, owner), group=self.group, async_op=True)
        self._pending.append((owner, params, flat, work))

    def finish(self) -> None:
        """Wait for this step's reductions and give the owner its summed gradients."""
        reported, self._reported = self._reported, 0
        if reported != len(self._bucket_of):
            raise ConfigError("parallel.shard_gradients: some parameters got no gradient in this step; ZeRO-2 "
                              "needs every parameter used in every step (or use DDP: drop shard_gradients)")
        for owner, params, flat, work in self._pending:
            work.wait()
            if owner == self.rank:
                offset = 0
                for q in params:
                    q.grad = flat[offset:offset + q.numel()].view_as(q).to(q.dtype)
                    offset += q.numel()
        self._pending.clear()
