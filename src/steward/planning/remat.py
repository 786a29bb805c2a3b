"""The rematerialization planner: a policy per block (keep, selective, full, offload) with the least
added time whose predicted peak fits the memory budget. It decides; `steward.memory.apply` applies.

The model runs as a chain of segments: the embedding, the blocks in order, the head. With P(k)
the bytes that segments before k hold for backward, segment k's forward and backward reach
P(k) + peak(k), and nothing else is live but the static memory (parameters, gradients,
optimizer states and the parallel wrapper's buffers). So

    predicted peak = static + max over k of (P(k) + peak_k(policy_k)),
    P(k) = sum over j < k of saved_j(policy_j),

and the cost is the sum of the blocks' added times. `solve` is a dynamic programme over the blocks
whose state is P: a partial plan that holds more bytes and costs no less time than another is
dropped (every later constraint only gets harder with more bytes held), which keeps the answer
exact; `brute_force` in the tests checks it. The static memory is the one memory model's
(`footprint.static_memory`); the activations are the profile's (`profile`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from steward.errors import StewardError
from steward.models.gpt import block_params
from steward.planning.footprint import static_memory
from steward.planning.hardware import Device, gpu_for_device_name
from steward.planning.profile import ModelProfile, precision_of, profile_model
from steward.planning.units import GB, MB


class InfeasibleBudget(StewardError):
    """No per-block choice fits the budget; the message says by how much it is short."""

    def __init__(self, message: str, shortfall_bytes: int, min_peak_bytes: int):
        super().__init__(message)
        self.shortfall_bytes = shortfall_bytes
        self.min_peak_bytes = min_peak_bytes


@dataclass
class MemoryPlan:
    policies: list[str]
    activation_peak_bytes: int
    """Predicted highest live activation bytes over the step."""
    static_bytes: int
    added_time_s: float
    """Predicted extra time per forward+backward of one micro-batch."""
    recompute_flops: float
    offload_bytes: int
    budget_bytes: int | None = None
    static: dict[str, int] = field(default_factory=dict)

    @property
    def peak_bytes(self) -> int:
        return self.static_bytes + self.activation_peak_bytes

    def runs(self) -> list[tuple[int, int, str]]:
        """(first block, last block, policy) for each run of equal policies."""
        out: list[tuple[int, int, str]] = []
        for i, p in enumerate(self.policies):
            if out and out[-1][2] == p:
                out[-1] = (out[-1][0], i, p)
            else:
                out.append((i, i, p))
        return out

    def describe(self) -> str:
        return ", ".join(f"{a}-{b}: {p}" if a != b else f"{a}: {p}" for a, b, p in self.runs())

    def to_dict(self) -> dict[str, Any]:
        counts = {p: self.policies.count(p) for p in dict.fromkeys(self.policies)}
        return {
            "policies": self.policies,
            "blocks": self.describe(),
            "counts": counts,
            "predicted_peak_bytes": self.peak_bytes,
            "predicted_activation_bytes": self.activation_peak_bytes,
            "static_bytes": self.static_bytes,
            "static": self.static,
            "budget_bytes": self.budget_bytes,
            "added_time_s": self.added_time_s,
            "recompute_flops": self.recompute_flops,
            "offload_bytes": self.offload_bytes,
        }


def _segments(profile: ModelProfile) -> tuple[int, int]:
    """(peak of the embedding segment, peak of the head segment)."""
    return profile.embedding_bytes, profile.head.peak_bytes


def predict(profile: ModelProfile, policies: list[str], static: dict[str, int] | None = None) -> MemoryPlan:
    """The predicted peak and added time of one policy per block."""
    if len(policies) != len(profile.blocks):
        raise ValueError(f"{len(policies)} policies for {len(profile.blocks)} blocks")
    emb, head = _segments(profile)
    held, peak = 0, emb
    time = flops = offload = 0.0
    for costs, p in zip(profile.blocks, policies):
        if p not in costs:
            raise ValueError(f"memory.policy: {p!r} was not profiled here (profiled: {', '.join(costs)})")
        c = costs[p]
        peak = max(peak, held + profile.block_peak(c))
        held += c.saved_bytes
        time += c.added_time_s
        flops += c.recompute_flops
        offload += c.offload_bytes
    peak = max(peak, held + head)
    static = static or {"total": 0}
    return MemoryPlan(list(policies), int(peak), int(static["total"]), time, flops, int(offload), static=static)


def _pareto(states: list[tuple[int, float, int, Any]]) -> list[tuple[int, float, int, Any]]:
    """Keep the states no other beats on both held bytes and time."""
    states.sort(key=lambda s: (s[0], s[1], s[2]))
    kept, best = [], math.inf
    for s in states:
        if s[1] < best:
            kept.append(s)
            best = s[1]
    return kept


def _candidates(profile: ModelProfile, allowed: tuple[str, ...] | None) -> list[list[tuple[str, Any]]]:
    out = []
    for costs in profile.blocks:
        opts = [(p, c) for p, c in costs.items() if allowed is None or p in allowed]
        if not opts:
            raise ValueError(f"none of the policies {allowed} was profiled (profiled: {', '.join(costs)})")
        out.append(opts)
    return out


def solve_activations(
    profile: ModelProfile, activation_budget: float, allowed: tuple[str, ...] | None = None
) -> list[str] | None:
    """Policies with the least added time whose activation peak is within `activation_budget`;
    None when there are none. Ties go to the plan that holds fewer bytes."""
    emb, head = _segments(profile)
    if emb > activation_budget:
        return None
    # state: (held bytes, added time, order of the policy in the block's options, back pointer)
    states: list[tuple[int, float, int, Any]] = [(0, 0.0, 0, None)]
    for opts in _candidates(profile, allowed):
        grown = []
        for held, t, _, back in states:
            for rank, (p, c) in enumerate(opts):
                if held + profile.block_peak(c) <= activation_budget:
                    grown.append((held + c.saved_bytes, t + c.added_time_s, rank, (p, back)))
        if not grown:
            return None
        states = _pareto(grown)
    final = [s for s in states if s[0] + head <= activation_budget]
    if not final:
        return None
    best = min(final, key=lambda s: (s[1], s[0]))
    policies, back = [], best[3]
    while back is not None:
        policies.append(back[0])
        back = back[1]
    return policies[::-1]


def min_activation_peak(profile: ModelProfile, allowed: tuple[str, ...] | None = None) -> tuple[int, list[str]]:
    """The lowest activation peak any per-block choice reaches, and one plan that reaches it."""
    emb, head = _segments(profile)
    # state: (held bytes, peak so far, back pointer); keep those no other beats on both
    states: list[tuple[int, int, Any]] = [(0, emb, None)]
    for opts in _candidates(profile, allowed):
        grown = [(held + c.saved_bytes, max(pk, held + profile.block_peak(c)), (p, back))
                 for held, pk, back in states for p, c in opts]
        grown.sort(key=lambda s: (s[0], s[1]))
        states, best = [], math.inf
        for s in grown:
            if s[1] < best:
                states.append(s)
                best = s[1]
    held, peak, back = min(states, key=lambda s: (max(s[1], s[0] + head), s[0]))
    policies = []
    while back is not None:
        policies.append(back[0])
        back = back[1]
    return max(peak, held + head), policies[::-1]


def _gb(n: float) -> str:
    return f"{n / GB:.2f} GB" if abs(n) >= 0.1 * GB else f"{n / MB:.1f} MB"


def solve(
    profile: ModelProfile,
    budget_bytes: int,
    static: dict[str, int],
    allowed: tuple[str, ...] | None = None,
    budget_key: str = "memory.budget_gb",
) -> MemoryPlan:
    """The plan with the least added time whose predicted peak (static + activations) fits
    `budget_bytes`; InfeasibleBudget, saying by how much, when none does."""
    policies = solve_activations(profile, budget_bytes - static["total"], allowed)
    if policies is None:
        least, _ = min_activation_peak(profile, allowed)
        need = static["total"] + least
        short = need - budget_bytes
        raise InfeasibleBudget(
            f"{budget_key}: no plan fits {_gb(budget_bytes)} per device; the least any plan needs is "
            f"{_gb(need)} (static {_gb(static['total'])} + activations {_gb(least)}), {_gb(short)} short; "
            "raise the budget, lower train.micro_batch_size or train.seq_len, or shard more (parallel.dp_shard)",
            shortfall_bytes=int(short),
            min_peak_bytes=int(need),
        )
    plan = predict(profile, policies, static)
    plan.budget_bytes = int(budget_bytes)
    return plan


# ---- from a job config -------------------------------------------------------------------------


def spec_for_device(device: torch.device) -> Device | None:
    """The GPU table's device for the CUDA device in use when the table has its planner figures (by
    name), with the memory this board actually has."""
    if device.type != "cuda":
        return None
    g = gpu_for_device_name(torch.cuda.get_device_name(device))
    if g is None or not g.plannable:
        return None
    return dataclasses.replace(g, memory_bytes=torch.cuda.get_device_properties(device).total_memory)


def device_memory_bytes(device: torch.device) -> int:
    """Total memory of the device: the GPU's, or the host's physical memory for the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def available_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError):
        return device_memory_bytes(device) // 2


@dataclass
class PlanContext:
    """Everything besides the profile that a plan for one job depends on."""

    args: Any
    """ModelArgs of the flavor, vocabulary and sequence length resolved as the trainer does."""
    micro_batch: int
    seq_len: int
    precision: str
    tp: int
    strategy: str
    dp_shard: int
    device: Any
    """torch.device the job trains on (a 'cuda' device may be only a target: see spec)."""
    spec: Device | None
    """The target GPU (roofline figures and memory) or None."""
    budget_bytes: int
    static: dict[str, int]
    allowed: tuple[str, ...]


def plan_context(cfg, dims, device, args, spec=None) -> PlanContext:
    """Resolve a job's micro-batch, precision, sharding and budget for `device` (or the GPU `spec`
    describes, when planning for a device this machine does not have)."""
    device = torch.device(device)
    m, t = cfg.memory, cfg.train
    # FSDP2 also wraps replication composed with tp/pp (steward.parallel.apply)
    strategy = "fsdp" if dims.strategy == "ddp" and dims.uses_fsdp else dims.strategy
    precision = precision_of(t.mixed_precision, device.type, dims.uses_fsdp)
    micro = t.batch_size // dims.dp // dims.grad_accum
    tp = dims.tp
    if spec is None and device.type == "cuda" and torch.cuda.is_available():
        spec = spec_for_device(device)
    if m.budget_gb > 0:
        budget = int(m.budget_gb * GB)
    else:
        total = spec.memory_bytes if spec is not None else device_memory_bytes(device)
        budget = int(m.budget_fraction * total)
    allowed = tuple(p.strip() for p in m.plan_policies.split(",") if p.strip())
    if device.type == "cpu" or tp > 1:  # offload: GPUs only, and not for tensor-parallel activations
        allowed = tuple(p for p in allowed if p != "offload")
    static = static_memory(args, strategy, dims.dp_shard, tp, precision)
    return PlanContext(args, micro, t.seq_len, precision, tp, strategy, dims.dp_shard, device, spec,
                       budget, static, allowed)


def _one_block_footprint(ctx: PlanContext) -> int:
    """A generous bound on what profiling one block for real allocates: fp32 weights and gradients
    and about 20 residual-width and 6 hidden-width activations per token (the measured keep
    profiles of the flavors stay below it)."""
    a = ctx.args
    return 4 * (2 * block_params(a) // ctx.tp + ctx.micro_batch * ctx.seq_len * (20 * a.dim + 6 * a.ffn_dim // ctx.tp))


def profile_for(ctx: PlanContext, method: str = "auto") -> ModelProfile:
    """Profile the job's model: `measured` on the device, `analytic` with fake tensors; `auto`
    measures when the device is here and one block takes under a quarter of its free memory."""
    here = ctx.device.type == "cpu" or (ctx.device.type == "cuda" and torch.cuda.is_available())
    if method == "auto":
        fits = here and _one_block_footprint(ctx) <= available_memory_bytes(ctx.device) // 4
        method = "measured" if fits else "analytic"
    if method == "measured" and not here:
        raise StewardError(f"memory.profile: measured needs the {ctx.device.type} device here; use analytic or auto")
    policies = tuple(p for p in ("keep", "selective", "full", "offload")
                     if p != "offload" or (ctx.device.type != "cpu" and ctx.tp == 1))
    return profile_model(ctx.args, ctx.micro_batch, ctx.seq_len, device=ctx.device, precision=ctx.precision,
                         tp=ctx.tp, method=method, spec=ctx.spec, policies=policies)


def plan_record(cfg, ctx: PlanContext, profile: ModelProfile) -> tuple[MemoryPlan, dict[str, Any]]:
    """The plan memory.policy asks for (solved under the budget for 'plan', fixed otherwise) and
    the record the run's summary.json keeps."""
    n = len(profile.blocks)
    policy = cfg.memory.policy
    if policy == "plan":
        plan = solve(profile, ctx.budget_bytes, ctx.static, ctx.allowed)
    else:
        plan = predict(profile, [policy] * n, ctx.static)
        plan.budget_bytes = ctx.budget_bytes
    record = {
        "policy": policy,
        **plan.to_dict(),
        "fits_budget": plan.peak_bytes <= ctx.budget_bytes,
        "micro_batch": ctx.micro_batch,
        "seq_len": ctx.seq_len,
        "precision": ctx.precision,
        "profile": profile.method,
        "time_model": profile.time_model,
        "block_time_s": profile.block_time_s,
    }
    return plan, record


def needs_profile(cfg, args, dims) -> bool:
    """Whether memory.policy asks for a profile and prediction: not for keep, a model without a
    flavor's shapes (`args` None), or pipeline stages (not modelled); those run one fixed policy."""
    return cfg.memory.policy != "keep" and args is not None and dims.pp == 1


def fixed_record(policy: str, n_blocks: int) -> dict[str, Any]:
    """The record of one policy for every block, with nothing predicted."""
    return {"policy": policy, "policies": [policy] * n_blocks}


def decide(cfg, dims, device, args) -> dict[str, Any]:
    """The rematerialization plan of a job (`needs_profile` true): profile its model, solve or fix the
    policies as memory.policy asks, and return the record the trainer applies and keeps."""
    ctx = plan_context(cfg, dims, device, args)
    return plan_record(cfg, ctx, profile_for(ctx, cfg.memory.profile))[1]
