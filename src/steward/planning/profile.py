"""Per-block activation memory and recomputation cost, under each policy: the rematerialization
planner's cost model (`remat` solves with it).

One transformer block (and the output head) is run forward and backward under an
`ActivationTracker` (`tracker`), which sees every tensor the ops create and when the last
reference to its storage goes: the live bytes, op by op, of what autograd holds. From it:

- saved_bytes: what the block still holds for backward once its forward is done (its input
  included when the policy keeps it);
- forward_peak_bytes / backward_peak_bytes: the highest live bytes while the block runs
  forward / backward (the incoming gradient and the recomputed tensors included, the parameter
  gradients not: those are in the static memory, `footprint.static_memory`);
- recompute FLOPs and added time against `keep`.

Two ways, same code:
- `measured`: real tensors on the device; time is measured (best of several interleaved rounds).
- `analytic`: fake tensors (`FakeTensorMode`): exact shapes and dtypes, nothing allocated, so a
  175B block costs nothing; time is a roofline per op (FLOPs over peak FLOP/s or bytes over memory
  bandwidth, whichever is larger) at the figures of a named GPU. On the sizes that fit, the tests
  check the analytic bytes against the measured ones.

Offload is profiled from `keep`: the block keeps nothing on the device, its saved bytes cross the
host link twice. On a GPU the measured profile runs it for real. The policies themselves are the
runtime's (`steward.memory.apply`): what is profiled is what is trained.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from steward.memory.apply import POLICIES, apply_policy
from steward.models.gpt import (
    Attention,
    FeedForward,
    ModelArgs,
    RMSNorm,
    TransformerBlock,
    precompute_rope,
)
from steward.planning.footprint import BF16_BYTES, FP32_BYTES
from steward.planning.hardware import Device, plannable_gpus
from steward.planning.tracker import ActivationTracker, nbytes, storage_keys


@dataclass
class PolicyCost:
    saved_bytes: int
    """Held for backward after the segment's forward (its input included when kept)."""
    forward_peak_bytes: int
    backward_peak_bytes: int
    recompute_flops: float = 0.0
    """FLOPs backward runs beyond keep's (the recomputation)."""
    added_time_s: float = 0.0
    """Time per forward+backward beyond keep's (recomputation, or host copies for offload)."""
    offload_bytes: int = 0
    """Bytes copied to host memory in forward (and back in backward)."""

    @property
    def peak_bytes(self) -> int:
        return max(self.forward_peak_bytes, self.backward_peak_bytes)


PRECISIONS = ("fp32", "autocast-bf16", "bf16")
"""fp32; bf16 autocast over fp32 weights (one process, DDP); bf16 weights and activations (FSDP2's
param_dtype)."""


def precision_of(mixed_precision: str, device_type: str, sharded: bool) -> str:
    """The compute precision the trainer uses (its rule in _build_model)."""
    use_bf16 = mixed_precision == "bf16" or (mixed_precision == "auto" and device_type == "cuda")
    if not use_bf16:
        return "fp32"
    return "bf16" if sharded else "autocast-bf16"


class _Head(nn.Module):
    """Final norm, output projection and the loss: the segment after the last block. Under tensor
    parallel the norm holds 1/tp of the tokens and the projection 1/tp of the vocabulary, and
    both all-gathers (tokens in, logits out) are copies to the full size, as steward.parallel.tp
    lays it out."""

    def __init__(self, args: ModelArgs, tp: int):
        super().__init__()
        self.tp, self.vocab = tp, args.vocab_size
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.output = nn.Linear(args.dim, -(-args.vocab_size // tp), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        if self.tp == 1:
            return self.output(h)
        return self.output(h.repeat(1, self.tp, 1)).repeat(1, 1, self.tp)[..., : self.vocab]


class _TensorParallelBlock(nn.Module):
    """One rank's share of a block under steward.parallel.tp (tensor parallel, sequence-parallel
    norms), on one device: the residual stream and the norms hold 1/tp of the tokens; the
    all-gather before the projections is a copy to the full sequence (same bytes), the projections
    hold 1/tp of the heads and hidden units, and the reduce-scatter after them is a copy back to
    1/tp of the tokens."""

    def __init__(self, args: ModelArgs, tp: int):
        super().__init__()
        for what, n in (("n_heads", args.n_heads), ("n_kv_heads", args.kv_heads), ("ffn hidden size", args.ffn_dim)):
            if n % tp:
                raise ValueError(f"parallel.tp: {tp} does not divide the model's {what} ({n})")
        self.tp = tp
        d, hd = args.dim, args.head_dim
        self.attention_norm = RMSNorm(d, args.norm_eps)
        self.ffn_norm = RMSNorm(d, args.norm_eps)
        self.attention = Attention(args)
        a = self.attention
        a.wq = nn.Linear(d, args.n_heads * hd // tp, bias=False)
        a.wk = nn.Linear(d, args.kv_heads * hd // tp, bias=False)
        a.wv = nn.Linear(d, args.kv_heads * hd // tp, bias=False)
        a.wo = nn.Linear(args.n_heads * hd // tp, d, bias=False)
        self.feed_forward = FeedForward(d, args.ffn_dim // tp)

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        # the reduce-scatter leaves this rank's tokens in a tensor of their own
        h = x + self.attention(self._gather(self.attention_norm(x)), rope)[:, :n].clone()
        return h + self.feed_forward(self._gather(self.ffn_norm(h)))[:, :n].clone()

    def _gather(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat(1, self.tp, 1)


@dataclass
class _Setup:
    args: ModelArgs
    batch: int
    seq_len: int
    device: torch.device
    precision: str
    tp: int

    @property
    def act_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    def autocast(self):
        if self.precision != "autocast-bf16":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def build(self, kind: str) -> nn.Module:
        with torch.device(self.device):
            if kind == "head":
                module = _Head(self.args, self.tp)
            else:
                module = TransformerBlock(self.args) if self.tp == 1 else _TensorParallelBlock(self.args, self.tp)
        if not _is_fake(module):
            with torch.no_grad():  # any values do: only sizes and times matter
                for p in module.parameters():
                    p.normal_(0.0, 0.02) if p.ndim > 1 else p.fill_(1.0)
        if self.precision == "bf16":
            # re-registered rather than module.to(): that swaps tensors, which fake ones refuse
            for sub in module.modules():
                for name, p in list(sub.named_parameters(recurse=False)):
                    setattr(sub, name, nn.Parameter(p.detach().to(torch.bfloat16)))
        return module

    @property
    def local_seq(self) -> int:
        """Tokens per rank in the residual stream (sequence parallel splits them over tp)."""
        return self.seq_len // self.tp

    def inputs(self, module: nn.Module):
        a = self.args
        with torch.device(self.device):
            x0 = torch.randn(self.batch, self.local_seq, a.dim, dtype=self.act_dtype, requires_grad=True)
            rope = precompute_rope(a.head_dim, self.seq_len, a.rope_theta)
            targets = torch.randint(0, a.vocab_size, (self.batch, self.seq_len))
        return x0, rope, targets

    def call(self, kind: str, module: nn.Module, x: torch.Tensor, rope, targets) -> torch.Tensor:
        with self.autocast():
            if kind == "block":
                return module(x, rope)
            logits = module(x)
        # the trainer's lm_loss, outside autocast as there (train imports memory, not the reverse)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


def _is_fake(module: nn.Module) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor

    return any(isinstance(p, FakeTensor) for p in module.parameters())


def _track(setup: _Setup, kind: str, policy: str, spec: Device | None) -> dict[str, Any]:
    """Run one segment forward and backward under the tracker; bytes, FLOPs and roofline time."""
    module = setup.build(kind)
    if kind == "block":
        apply_policy(module, policy)
    x0, rope, targets = setup.inputs(module)
    exclude = storage_keys([*module.parameters(), *module.buffers(), x0, rope, targets])
    tracker = ActivationTracker(setup.device.type, exclude, spec)
    with tracker:
        x = x0 * 1  # a tracked copy: in the model the input is the previous segment's output
        out = setup.call(kind, module, x, rope, targets)
        del x
        t_fwd = tracker.mark()
        out_ids = tracker.uids([out])
        saved = tracker.live_bytes(ignore=out_ids)
        forward_peak = tracker.peak(0, t_fwd)
        grad = torch.ones_like(out) if out.dim() else None  # the gradient arriving from above
        tracker.phase = "backward"
        t_bwd = tracker.mark()
        out.backward(grad)
        del grad
        t_end = tracker.mark()
    param_grads = tracker.uids([p.grad for p in module.parameters()])
    # a block's output is the next block's input, gone by the time this block's backward runs; the
    # head's output, the loss, stays alive through backward
    backward_peak = tracker.peak(t_bwd, t_end, ignore=(out_ids if kind == "block" else set()) | param_grads)
    return {
        "out_bytes": nbytes(out),
        "saved_bytes": saved,
        "forward_peak_bytes": forward_peak,
        "backward_peak_bytes": backward_peak,
        "flops": tracker.flops,
        "roofline_s": tracker.roofline_s,
        "bytes_moved": tracker.bytes_moved,
    }


def _run(setup: _Setup, kind: str, policy: str, spec: Device | None, fake: bool) -> dict[str, Any]:
    if not fake:
        return _track(setup, kind, policy, spec)
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=False):
        return _track(setup, kind, policy, spec)


def _time_block(setup: _Setup, policies: list[str], rounds: int) -> dict[str, float]:
    """Best forward+backward time of one block under each policy, rounds interleaved so that the
    machine's drift touches every policy alike."""
    block = setup.build("block")
    x0, rope, _ = setup.inputs(block)
    grad = torch.ones_like(x0)
    sync = torch.cuda.synchronize if setup.device.type == "cuda" else (lambda: None)

    def sample(policy: str, iters: int) -> float:
        apply_policy(block, policy)
        sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            block.zero_grad(set_to_none=True)
            setup.call("block", block, x0 * 1, rope, None).backward(grad)
        sync()
        return (time.perf_counter() - t0) / iters

    # warm-up (allocator, kernels, caches), then enough iterations per sample for about 20 ms
    iters = max(1, min(50, math.ceil(0.02 / max(sample(p, 1) for p in policies))))
    best = {p: math.inf for p in policies}
    for _ in range(rounds):
        for p in policies:
            best[p] = min(best[p], sample(p, iters))
    return best


@dataclass
class ModelProfile:
    """Costs of every segment of one model at one micro-batch shape, per policy."""

    method: str
    """'measured' or 'analytic'."""
    device: str
    precision: str
    micro_batch: int
    seq_len: int
    tp: int
    time_model: str
    embedding_bytes: int
    """The embedding's output: alive while block 0 runs (forward and backward)."""
    blocks: list[dict[str, PolicyCost]]
    head: PolicyCost
    block_time_s: float
    """keep's forward+backward time of one block (what the added times compare to)."""
    policies: tuple[str, ...] = field(default=POLICIES)
    loss_bytes: int = 0
    """The loss and the gradient that seeds backward: alive while the blocks run backward."""

    def block_peak(self, cost: PolicyCost) -> int:
        """A block's own peak in the model: its forward, or its backward with the loss alive."""
        return max(cost.forward_peak_bytes, cost.backward_peak_bytes + self.loss_bytes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        # identical blocks are the rule: show one when they agree
        d["blocks"] = d["blocks"][:1] if all(b == self.blocks[0] for b in self.blocks) else d["blocks"]
        d["n_blocks"] = len(self.blocks)
        return d


def profile_model(
    args: ModelArgs,
    micro_batch: int,
    seq_len: int,
    *,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    tp: int = 1,
    method: str = "analytic",
    spec: Device | None = None,
    policies: tuple[str, ...] | None = None,
    rounds: int = 3,
) -> ModelProfile:
    """Profile one block (every block of a flavor has the same shapes) and the head.

    `analytic` allocates nothing: fake tensors shaped as on `device` would be; times from the
    roofline of `spec` (H100 when none is given). `measured` runs on `device` for real. The global
    random state is left as it was: the trainer profiles between seeding and initialising weights.
    """
    device = torch.device(device)
    cuda = [device] if device.type == "cuda" and method == "measured" else []
    with torch.random.fork_rng(devices=cuda):
        return _profile_model(args, micro_batch, seq_len, device, precision, tp, method, spec, policies, rounds)


def _profile_model(args, micro_batch, seq_len, device, precision, tp, method, spec, policies, rounds) -> ModelProfile:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if method not in ("analytic", "measured"):
        raise ValueError(f"memory.profile: must be analytic or measured, got {method!r}")
    if policies is None:
        policies = POLICIES if device.type != "cpu" or method == "analytic" else ("keep", "selective", "full")
    if seq_len % tp:
        raise ValueError(f"train.seq_len: {seq_len} is not divisible by parallel.tp {tp} (sequence parallel splits it)")
    fake = method == "analytic"
    # fake tensors are made on the CPU: the CPU's fused attention saves what CUDA's does (output and
    # log-sum-exp), and the ops before and after are the same ATen ops
    setup = _Setup(args, micro_batch, seq_len, torch.device("cpu") if fake else device, precision, tp)
    if fake:
        spec = spec or plannable_gpus()["h100"]
    tracked = {p: _run(setup, "block", p, spec if fake else None, fake) for p in policies if p != "offload"}
    head = _run(setup, "head", "keep", None, fake)
    keep = tracked["keep"]
    keep_bwd_flops = keep["flops"]["backward"]
    if fake:
        keep_time = keep["roofline_s"]["forward"] + keep["roofline_s"]["backward"]
        times = {p: r["roofline_s"]["forward"] + r["roofline_s"]["backward"] - keep_time for p, r in tracked.items()}
        time_model = f"roofline at {spec.name} figures"
    else:
        measured = _time_block(setup, list(policies), rounds)
        keep_time = measured["keep"]
        # Under a loaded machine the difference of two timings can vanish or go negative; the
        # recomputation's share of keep's work (FLOPs or bytes moved, whichever is larger) is the
        # floor, so that extra work never looks free.
        work = {k: sum(keep[k].values()) for k in ("flops", "bytes_moved")}
        times = {}
        for p, t in measured.items():
            r = tracked.get(p)
            share = 0.0 if r is None else max(
                (r["flops"]["backward"] - keep["flops"]["backward"]) / max(work["flops"], 1.0),
                (r["bytes_moved"]["backward"] - keep["bytes_moved"]["backward"]) / max(work["bytes_moved"], 1))
            times[p] = max(t - keep_time, share * keep_time)
        time_model = f"measured on {device.type}"
    costs: dict[str, PolicyCost] = {}
    for p in policies:
        if p == "offload" and p not in tracked and fake:
            # everything keep saves goes to the host and back: two crossings of the host link
            costs[p] = PolicyCost(0, keep["forward_peak_bytes"], keep["backward_peak_bytes"], 0.0,
                                  2 * keep["saved_bytes"] / spec.host_bandwidth, keep["saved_bytes"])
            continue
        r = tracked.get(p) or _run(setup, "block", p, None, False)
        costs[p] = PolicyCost(
            saved_bytes=r["saved_bytes"],
            forward_peak_bytes=r["forward_peak_bytes"],
            backward_peak_bytes=r["backward_peak_bytes"],
            recompute_flops=max(0.0, r["flops"]["backward"] - keep_bwd_flops),
            # recomputation cannot save time; a negative difference is timer noise
            added_time_s=max(0.0, times[p]) if p != "keep" else 0.0,
            offload_bytes=keep["saved_bytes"] - r["saved_bytes"] if p == "offload" else 0,
        )
    head_cost = PolicyCost(head["saved_bytes"], head["forward_peak_bytes"], head["backward_peak_bytes"])
    act_bytes = BF16_BYTES if precision == "bf16" else FP32_BYTES
    return ModelProfile(
        method=method,
        device=f"{spec.name} (fake tensors)" if fake else device.type,
        precision=precision,
        micro_batch=micro_batch,
        seq_len=seq_len,
        tp=tp,
        time_model=time_model,
        embedding_bytes=micro_batch * (seq_len // tp) * args.dim * act_bytes,
        blocks=[costs] * args.n_layers,
        head=head_cost,
        block_time_s=keep_time,
        policies=tuple(policies),
        loss_bytes=2 * head["out_bytes"],
    )
