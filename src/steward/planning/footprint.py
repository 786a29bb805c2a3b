"""Bytes per device: the one memory model of the layout planner (`cost.device_memory`) and the
rematerialization planner (`static_memory`, plus the profiled activations of `profile`).

What a device holds while it trains:
  * model states, per parameter it owns: fp32 master weight, fp32 gradient, AdamW's two fp32 moments
    (`model_state_bytes`);
  * the data-parallel wrapper's extra copies: FSDP2's unsharded compute-dtype weights of the blocks in
    flight and the root, plus one block's unsharded fp32 gradient (`fsdp_unsharded_bytes`); DDP's
    gradient buckets (`ddp_bucket_bytes`); autocast's bf16 weight copies (`autocast_copy_bytes`);
  * activations: by the per-layer counting of Korthikanti et al. 2022 ("Reducing Activation
    Recomputation in Large Transformer Models", section 4): every tensor autograd keeps for the
    backward pass, per token. Their GPT layer keeps 34 h + 5 a s bytes per token (16-bit, dropout,
    GELU, unfused attention); this decoder's block (RMSNorm computed in fp32, SwiGLU, fused
    scaled_dot_product_attention: no s^2 term, no dropout) keeps
        (8 h + 6 e h + 4 e f) / tp + 2 e h   bytes per token
    (e bytes per activation element, f the feed-forward width; sequence parallel divides the norm
    part by tp, tensor parallel the rest; the two norm outputs tensor parallel all-gathers are kept
    whole). `selective` recompute keeps the matmul and attention outputs (e (5 h + 2 h_kv + 2 f) / tp);
    `full` keeps the block input (e h / tp). The rematerialization planner measures them instead
    (`profile`, fake tensors or real ones).

The two planners count the same parts with these functions; where they still differ, the
difference is in what they pass (see `static_memory`).
"""

from __future__ import annotations

import math

from steward.models.gpt import ModelArgs, block_params, num_params

FP32_BYTES = 4
"""Bytes of an fp32 element: master weights, gradients, AdamW moments, fp32 activations."""
BF16_BYTES = 2
"""Bytes of a bf16 (or fp16) element: compute-dtype weight copies and activations."""
ADAMW_STATE_BYTES = 2 * FP32_BYTES
"""AdamW's exp_avg and exp_avg_sq, fp32, per parameter."""


# ---- model states and the data-parallel wrapper's copies -----------------------------------------


def model_state_bytes(params: float) -> dict[str, float]:
    """fp32 parameters, fp32 gradients and AdamW's moments for `params` parameters held here."""
    return {"params": FP32_BYTES * params, "grads": FP32_BYTES * params, "optimizer": ADAMW_STATE_BYTES * params}


def fsdp_unsharded_bytes(block: int, root: int, in_flight: int, compute_bytes: int, tp: int) -> float:
    """What FSDP2 holds unsharded beside the shards, per tensor-parallel rank: the compute-dtype weights
    of `in_flight` blocks of `block` parameters and of `root` parameters outside the blocks (gathered
    once, not resharded after forward), and one block's fp32 gradient before its reduce-scatter."""
    return compute_bytes * in_flight * block / tp + FP32_BYTES * block / tp + compute_bytes * root / tp


def ddp_bucket_bytes(params: float) -> float:
    """DDP's gradient buckets: an fp32 copy of the gradients, allocated once."""
    return FP32_BYTES * params


def autocast_copy_bytes(params: float) -> float:
    """The bf16 weight copies autocast makes of fp32 parameters (one process, DDP)."""
    return BF16_BYTES * params


def static_memory(args: ModelArgs, strategy: str, dp_shard: int, tp: int, precision: str) -> dict[str, int]:
    """The rematerialization planner's bytes per device that do not depend on the batch: model states
    and the data-parallel wrapper's copies, in whole bytes.

    FSDP2 shards the model states over dp_shard (`math.ceil`: the largest shard) and holds, unsharded,
    two blocks (the one running and the one prefetched) and the root (embedding, final norm, head).
    Tensor parallelism divides all of it by tp (the head included, as torchtitan shards it).

    Where the layout planner (`cost.device_memory`, one pipeline stage) counts differently: it divides
    without rounding up, counts only the vocabulary matrix of its end stage in FSDP2's root (not both
    matrices and the final norm), adds autocast's weight copies, keeps FSDP2's gradients unsharded
    while micro-batches accumulate, and takes the larger of activations and gradients as the peak of
    one micro-batch. Here autocast's copies are part of the profiled activations.
    """
    n = num_params(args)
    block = block_params(args)
    shard = dp_shard if strategy in ("fsdp", "hsdp") else 1
    per_rank = math.ceil(n / (shard * tp))
    out = {**model_state_bytes(per_rank), "wrapper": 0}
    if strategy in ("fsdp", "hsdp"):
        compute = BF16_BYTES if precision == "bf16" else FP32_BYTES
        root = n - block * args.n_layers
        # the whole model's copies in integer bytes, then this rank's share, rounded down
        out["wrapper"] = int(fsdp_unsharded_bytes(block, root, 2, compute, 1)) // tp
    elif strategy == "ddp":
        out["wrapper"] = ddp_bucket_bytes(per_rank)
    out["total"] = sum(out.values())
    return out


# ---- pipeline stages -------------------------------------------------------------------------------


def stage_blocks(n_layers: int, pp: int) -> list[int]:
    """Blocks per stage, as pipeline.stage_layers splits them."""
    base, extra = divmod(n_layers, pp)
    return [base + (1 if s < extra else 0) for s in range(pp)]


def stage_params(args: ModelArgs, pp: int, stage: int) -> int:
    """Parameters of one pipeline stage (before tensor parallel)."""
    n = stage_blocks(args.n_layers, pp)[stage] * block_params(args)
    if stage == 0:
        n += args.vocab_size * args.dim  # embedding
    if stage == pp - 1:
        n += args.dim + args.dim * args.vocab_size  # final norm, head
    return n


# ---- activations (Korthikanti et al. 2022's counting) ----------------------------------------------


def norm_site_bytes(h: int, tp: int, e: int, autocast: bool = False, consumers: int = 1) -> float:
    """Per token, one RMSNorm site: its input kept in fp32 (4 h, sequence-parallel), its output before the
    weight (e h, sequence-parallel) and the weighted output as the next matmuls' input (e h; under tensor
    parallel the all-gathered, whole-sequence copy). Under autocast the residual stream and the norm's
    output stay fp32 (4 h), and each of the `consumers` matmuls keeps its own bf16 cast of the input."""
    if autocast:
        return 8 * h / tp + consumers * e * h
    return (4 * h + e * h) / tp + e * h


def layer_activation_bytes(args: ModelArgs, tokens: int, tp: int, recompute: str, e: int,
                           autocast: bool = False, sequence_parallel: bool = True) -> float:
    """Bytes one block keeps for backward over `tokens` tokens (micro-batch x sequence) on one device.

    Korthikanti et al. 2022's counting applied to this block (checked against
    torch.autograd.graph.saved_tensors_hooks on the CPU, see tests/test_parallel_plan.py). Per token:
    two norm sites (`norm_site_bytes`); attention (/ tp): the rotated q, repeated k and v, and the
    SDPA output, which is also wo's input (4 e h; RoPE's complex multiply keeps only the rotation
    table); feed-forward (/ tp): w1 and w3 outputs, silu output and the product (4 e f).
    `selective` keeps the block input and the outputs of the seven matmuls and of attention (what
    memory.policy 'selective' saves), and recomputes norms, RoPE, SiLU and products:
    e (5 h + 2 h_kv + 2 f) / tp. `full` keeps the block input (e h / tp). Checked against the fake-tensor
    profile of steward.planning.profile (within 0.2% for keep and full, 8% for selective).
    `sequence_parallel` False: tensor parallel without sequence parallelism (Megatron-LM before 2022), whose
    norm sites hold the whole sequence on every tensor-parallel rank (Korthikanti et al. 2022, section 4.2:
    without sequence parallelism the LayerNorm and dropout activations are not split by t)."""
    h, hkv, f = args.dim, args.kv_heads * args.head_dim, args.ffn_dim
    if recompute == "full":
        per_token = e * h / tp
    elif recompute == "selective":
        per_token = e * (5 * h + 2 * hkv + 2 * f) / tp
    else:
        # the attention norm feeds wq, wk, wv; the feed-forward norm w1, w3
        norm_tp = tp if sequence_parallel else 1
        per_token = (norm_site_bytes(h, norm_tp, e, autocast, 3) + norm_site_bytes(h, norm_tp, e, autocast, 2)
                     + (4 * e * h + 4 * e * f) / tp)
    return tokens * per_token


def gpt_layer_activation_bytes(args: ModelArgs, tokens: int, tp: int, recompute: str, e: int,
                               unfused_seq_len: int = 0) -> float:
    """Bytes one GPT block (16-bit LayerNorm, GELU MLP, no dropout) keeps for backward over `tokens` tokens
    on one device, by Korthikanti et al. 2022's section 4 counting less its dropout masks, with sequence
    parallel (everything / tp). Per token: the two LayerNorm inputs (2 e h); attention: its input, q, k, v
    and its output (e (3 h + 2 h_kv)), and with unfused attention (`unfused_seq_len` s > 0) the softmax
    output per head (e a s; flash attention keeps none); MLP: its input, fc1 and GELU outputs (e (h + 2 F)),
    F = 3 f / 2 the GELU width of the equivalent SwiGLU hidden f. `selective` drops the s^2 part, `full`
    keeps the block input (e h / tp). How Megatron-LM, llm-foundry and BLOOM's code keep activations."""
    h, hkv, f = args.dim, args.kv_heads * args.head_dim, args.ffn_dim
    if recompute == "full":
        return tokens * e * h / tp
    per_token = e * (2 * h + 3 * h + 2 * hkv + h + 3 * f)
    if recompute == "none":
        per_token += e * args.n_heads * unfused_seq_len
    return tokens * per_token / tp


def loss_activation_bytes(args: ModelArgs, tokens: int, tp: int, e: int, autocast: bool = False,
                          bytes_per_logit: int = 12) -> float:
    """The last stage's extra: the final norm site, and at the loss's backward `bytes_per_logit` per token
    and vocabulary entry: three fp32 tensors (log-softmax output, the loss gradient, the log-softmax
    gradient) in Steward's trainer."""
    return tokens * (norm_site_bytes(args.dim, tp, e, autocast) + bytes_per_logit * args.vocab_size)


def stage_activation_bytes(args: ModelArgs, tokens: int, tp: int, recompute: str, e: int, autocast: bool,
                           blocks: int, in_flight: int, last: bool, layer=None,
                           bytes_per_logit: int = 12) -> float:
    """Activations of one pipeline stage of `blocks` blocks with `in_flight` micro-batches of `tokens`
    tokens kept (1F1B), at the start of the last backward: recomputation rebuilds one block's keep
    activations during its backward; the `last` stage adds the loss's. `layer(recompute)`: a block's
    bytes (default: this decoder's, `layer_activation_bytes`)."""
    if layer is None:
        def layer(policy: str) -> float:
            return layer_activation_bytes(args, tokens, tp, policy, e, autocast)
    act_layer = layer(recompute)
    acts = act_layer * blocks * in_flight
    if recompute == "full":  # one block's activations rebuilt during its backward
        acts += layer("none")
    elif recompute == "selective":
        acts += layer("none") - act_layer
    if last:
        acts += loss_activation_bytes(args, tokens, tp, e, autocast, bytes_per_logit)
    return acts
