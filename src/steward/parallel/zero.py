"""ZeRO-2 for plain data parallel (`parallel.shard_gradients`): the gradients sharded like the optimizer.

With ZeRO-1 (`parallel.shard_optimizer`) each rank steps only the parameters it owns, yet DDP still
all-reduces every gradient into full-size buckets that stay allocated between steps. Here there is no
DDP: once a parameter's gradient is final (the last micro-batch's backward has accumulated it), it is
reduced (summed, each rank's share divided by the group size first, as DDP does) onto the rank that owns
that parameter in the sharded optimizer, and the other ranks drop it when the step's reductions are done.
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


class ShardedGradients(nn.Module):
    """Wraps a replicated model (like DDP, `.module` is the model): same start on every rank, and each
    final gradient reduced onto its owner. `bind` gives it the sharded optimizer's parameter owners;
    `finish` (before clipping and the step) waits for the reductions and frees the gradients owned
    elsewhere."""

    def __init__(self, module: nn.Module, group: Any):
        super().__init__()
        self.module = module
        self.group = group
        self.size = dist.get_world_size(group)
        self.rank = dist.get_rank(group)
        self._sync = True
        self._owner: dict[nn.Parameter, int] = {}
        self._pending: list[tuple[nn.Parameter, Any]] = []
        with torch.no_grad():  # every rank starts from rank 0's weights (DDP does the same)
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t, dist.get_global_rank(group, 0), group=group)
        for p in module.parameters():
            if p.requires_grad:
                p.register_post_accumulate_grad_hook(self._reduce)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def bind(self, optimizer: Any) -> None:
        """Take the owners from a torch ZeroRedundancyOptimizer over this group (its `_param_to_rank`,
        a private property that its own step and state_dict rely on)."""
        owners = optimizer._param_to_rank
        trained = [p for p in self.module.parameters() if p.requires_grad]
        missing = [p for p in trained if p not in owners]
        if missing or optimizer.process_group is not self.group:
            raise ValueError("parallel.shard_gradients: the optimizer must shard exactly this model's parameters "
                             "over the data-parallel group (build it with train.optim.build_optimizer(shard_group))")
        self._owner = {p: owners[p] for p in trained}

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate gradients locally (the micro-batches before the last)."""
        self._sync = False
        try:
            yield
        finally:
            self._sync = True

    def _reduce(self, p: nn.Parameter) -> None:
        if not self._sync:
            return
        if not self._owner:
            raise RuntimeError("parallel.shard_gradients: a backward ran before the optimizer was bound "
                               "(ShardedGradients.bind)")
        p.grad.div_(self.size)
        dst = dist.get_global_rank(self.group, self._owner[p])
        self._pending.append((p, dist.reduce(p.grad, dst, group=self.group, async_op=True)))

    def finish(self) -> None:
        """Wait for this step's reductions; the gradients this rank does not own are dropped."""
        for p, work in self._pending:
            work.wait()
            if self._owner[p] != self.rank:
                p.grad = None
        self._pending.clear()
