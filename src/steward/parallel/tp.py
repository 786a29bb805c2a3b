"""Tensor parallel with sequence parallel on the norms (Megatron-LM's layout, as torchtitan applies it).

Inside a block the attention projections wq/wk/wv and the feed-forward w1/w3 are split by output
columns (each rank holds a slice of the heads and of the hidden units), wo and w2 by input rows, so
a block needs one all-gather in and one reduce-scatter out per sub-layer. Between sub-layers the
activations stay split along the sequence (Korthikanti et al. 2022, "sequence parallel"): the norms
and residual adds each work on 1/tp of the tokens, and activation memory shrinks by tp.
"""

from __future__ import annotations

import warnings

from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import Replicate, Shard
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    PrepareModuleInput,
    RowwiseParallel,
    SequenceParallel,
    parallelize_module,
)


def apply_tensor_parallel(model: nn.Module, tp_mesh: DeviceMesh) -> nn.Module:
    """Shard a steward Transformer (or one pipeline stage of it) over `tp_mesh`, in place."""
    # The head's replicated logits come back as a view; FSDP2 then warns on every step that in-place
    # ops on it would skip its hooks. The loss (lm_loss) reads the logits out of place.
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
    top: dict[str, object] = {}
    # A pipeline stage may lack the embedding, the final norm or the head.
    if getattr(model, "tok_embeddings", None) is not None:
        # split the vocabulary; the partial sums leave reduce-scattered along the sequence
        top["tok_embeddings"] = RowwiseParallel(input_layouts=Replicate(), output_layouts=Shard(1))
    if getattr(model, "norm", None) is not None:
        top["norm"] = SequenceParallel()
    if getattr(model, "output", None) is not None:
        # full logits on every tp rank: the loss needs no change (tokens, not vocab, are what dp splits)
        top["output"] = ColwiseParallel(input_layouts=Shard(1), output_layouts=Replicate(), use_local_output=True)
    if top:
        parallelize_module(model, tp_mesh, top)
    for block in model.layers.values():
        parallelize_module(block, tp_mesh, {
            "attention_norm": SequenceParallel(),
            # gather the sequence before the projections; the rope table passes through untouched
            "attention": PrepareModuleInput(input_layouts=(Shard(1), None), desired_input_layouts=(Replicate(), None)),
            "attention.wq": ColwiseParallel(),
            "attention.wk": ColwiseParallel(),
            "attention.wv": ColwiseParallel(),
            "attention.wo": RowwiseParallel(output_layouts=Shard(1)),
            "ffn_norm": SequenceParallel(),
            "feed_forward": PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),)),
            "feed_forward.w1": ColwiseParallel(),
            "feed_forward.w2": RowwiseParallel(output_layouts=Shard(1)),
            "feed_forward.w3": ColwiseParallel(),
        })
    return model
