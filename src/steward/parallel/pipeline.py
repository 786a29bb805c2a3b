"""Pipeline parallel through torch.distributed.pipelining: split the decoder into stages by blocks,
and run a 1F1B schedule over micro-batches.

Stage s of pp keeps a contiguous run of blocks (the first stage also the embedding, the last the
final norm and the head); the other modules are deleted, so parameter names stay those of the whole
model ("layers.7.attention.wq.weight") and checkpoints load at any pp.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.pipelining import PipelineStage, Schedule1F1B


def stage_layers(n_layers: int, pp: int, stage: int) -> range:
    """Blocks of `stage`: an even split, the first stages taking one more when it does not divide."""
    base, extra = divmod(n_layers, pp)
    start = stage * base + min(stage, extra)
    return range(start, start + base + (1 if stage < extra else 0))


def split_stage(model: nn.Module, pp: int, stage: int) -> nn.Module:
    """Keep only `stage`'s part of a Transformer (built on meta, before any sharding), in place."""
    keep = {str(i) for i in stage_layers(len(model.layers), pp, stage)}
    for name in list(model.layers.keys()):
        if name not in keep:
            del model.layers[name]
    if stage > 0:
        model.tok_embeddings = None  # receives hidden states from the previous stage
    if stage < pp - 1:
        model.norm = None
        model.output = None
    return model


class Pipeline:
    """One rank's stage and its 1F1B schedule. `step` trains on a batch (every micro-batch), `evaluate`
    runs forward only; both return the mean loss of the batch on the last stage, None elsewhere."""

    def __init__(self, stage_module: nn.Module, pp_mesh: DeviceMesh, n_microbatches: int,
                 device: torch.device, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        self.stage_index = pp_mesh.get_local_rank()
        self.num_stages = pp_mesh.size()
        self.stage = PipelineStage(stage_module, self.stage_index, self.num_stages, device,
                                   group=pp_mesh.get_group())
        # scale_grads: gradients are divided by the number of micro-batches, so they are those of the
        # mean loss over the batch, as without pipelining
        self.schedule = Schedule1F1B(self.stage, n_microbatches, loss_fn=loss_fn, scale_grads=True)

    @property
    def is_first(self) -> bool:
        return self.stage_index == 0

    @property
    def is_last(self) -> bool:
        return self.stage_index == self.num_stages - 1

    def _run(self, fn, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
        losses: list[torch.Tensor] = []
        if self.is_first:
            fn(inputs)
        elif self.is_last:
            fn(target=targets, losses=losses)
        else:
            fn()
        return torch.stack([x.detach() for x in losses]).mean() if self.is_last else None

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
        return self._run(self.schedule.step, inputs, targets)

    @torch.no_grad()
    def evaluate(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
        return self._run(self.schedule.eval, inputs, targets)
