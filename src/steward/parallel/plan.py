"""The planner: enumerate layouts (tp, pp, dp_replicate, dp_shard, micro-batch, recompute) for a model,
batch and cluster, predict memory per device and step time for each, and pick the fastest that fits.

Memory per device (the fullest pipeline stage):
  * parameters, gradients and AdamW states under the sharding (FSDP2 over dp_shard, tensor parallel
    over tp, the stage's blocks under pp), in the precision the trainer uses (fp32 master weights;
    bf16 gathered copies under FSDP2 mixed precision);
  * activations by the per-layer counting of Korthikanti et al. 2022 ("Reducing Activation
    Recomputation in Large Transformer Models", section 4): every tensor autograd keeps for the
    backward pass, per token. Their GPT layer keeps 34 h + 5 a s bytes per token (16-bit, dropout,
    GELU, unfused attention); this decoder's block (RMSNorm computed in fp32, SwiGLU, fused
    scaled_dot_product_attention: no s^2 term, no dropout) keeps
        (8 h + 6 e h + 4 e f) / tp + 2 e h   bytes per token
    (e bytes per activation element, f the feed-forward width; sequence parallel divides the norm
    part by tp, tensor parallel the rest; the two norm outputs tensor parallel all-gathers are kept
    whole). `selective` recompute keeps the matmul and attention outputs (e (5 h + 2 h_kv + 2 f) / tp);
    `full` keeps the block input (e h / tp);
  * pipeline 1F1B: the first stage holds pp micro-batches in flight;
  * the loss: logits and their fp32 softmax and gradient on the last stage.
Step time: compute FLOPs over the device's matmul rate (peak x efficiency), element-wise traffic over
memory bandwidth, a per-layer framework overhead (measured by calibration), every collective with the
alpha-beta model on the link class it crosses (tensor parallel inside a node on the critical path;
FSDP/DDP overlapped with compute except one block; pipeline sends per micro-batch), the 1F1B bubble
((pp - 1) extra micro-batch slots) and the optimizer's memory traffic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from steward.errors import StewardError
from steward.models.gpt import ModelArgs, block_params, flops_per_token
from steward.parallel.topology import GIB, Cluster, Link

RECOMPUTE = ("none", "selective", "full")
# memory.policy values that carry out each recompute choice
MEMORY_POLICY = {"none": "keep", "selective": "selective", "full": "full"}

ADAM_BYTES_PER_PARAM = 92
"""Bytes of memory traffic per parameter for one clipped AdamW step (foreach, fp32): m lerp 12, v
update 20, denominator 24, parameter update 16, weight decay 8, norm and clip 12."""

ELEMENTWISE_TRAFFIC = 4.0
"""Element-wise memory traffic per training step of a layer, in multiples of the bytes it keeps for
backward (forward writes and reads each kept tensor once, backward reads it and writes its gradient).
An assumption, not a measurement."""


class PlanError(StewardError):
    """No layout fits, or the request is malformed; the message names what is short and by how much."""


@dataclass(frozen=True)
class Layout:
    tp: int = 1
    pp: int = 1
    dp_replicate: int = 1
    dp_shard: int = 1
    micro_batch_size: int = 1
    recompute: str = "none"

    @property
    def dp(self) -> int:
        return self.dp_replicate * self.dp_shard

    @property
    def world(self) -> int:
        return self.tp * self.pp * self.dp

    def __str__(self) -> str:
        return (f"tp={self.tp} pp={self.pp} dp_replicate={self.dp_replicate} dp_shard={self.dp_shard} "
                f"micro_batch={self.micro_batch_size} recompute={self.recompute}")


@dataclass
class Request:
    """What to plan for. `dtype`: 'bf16' (GPU mixed precision: bf16 compute and activations, fp32
    master weights) or 'fp32' (the CPU trainer)."""

    args: ModelArgs
    global_batch: int
    seq_len: int
    cluster: Cluster
    memory_limit: float
    dtype: str = "bf16"
    allow_tp_across_nodes: bool = False
    name: str = ""
    placement_aware: bool = True
    """False: ranks placed without regard to nodes, so every group of two or more spans nodes (the
    simulator's baseline)."""

    @property
    def act_bytes(self) -> int:
        return 2 if self.dtype in ("bf16", "fp16") else 4


@dataclass
class Prediction:
    step_time_s: float
    memory_per_device_bytes: float
    tokens_per_s: float
    mfu: float
    comm_bytes_per_step: dict[str, float]
    """Bytes each device sends per step, by link class ('intra', 'inter') and 'total'."""
    time: dict[str, float] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Plan:
    layout: Layout
    predicted: Prediction
    fits: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"plan": dataclasses.asdict(self.layout), "predicted": self.predicted.to_dict(), "fits": self.fits}

    def apply_to(self, cfg):
        """A copy of JobConfig `cfg` with this layout: parallel degrees, micro-batch, recompute."""
        lay = self.layout
        return dataclasses.replace(
            cfg,
            parallel=dataclasses.replace(cfg.parallel, tp=lay.tp, pp=lay.pp, dp_replicate=lay.dp_replicate,
                                         dp_shard=lay.dp_shard),
            train=dataclasses.replace(cfg.train, micro_batch_size=lay.micro_batch_size),
            memory=dataclasses.replace(cfg.memory, policy=MEMORY_POLICY[lay.recompute]),
        )


# ---- parameters and activations ------------------------------------------------------------------


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


def norm_site_bytes(h: int, tp: int, e: int, autocast: bool = False, consumers: int = 1) -> float:
    """Per token, one RMSNorm site: its input kept in fp32 (4 h, sequence-parallel), its output before the
    weight (e h, sequence-parallel) and the weighted output as the next matmuls' input (e h; under tensor
    parallel the all-gathered, whole-sequence copy). Under autocast the residual stream and the norm's
    output stay fp32 (4 h), and each of the `consumers` matmuls keeps its own bf16 cast of the input."""
    if autocast:
        return 8 * h / tp + consumers * e * h
    return (4 * h + e * h) / tp + e * h


def layer_activation_bytes(args: ModelArgs, tokens: int, tp: int, recompute: str, e: int,
                           autocast: bool = False) -> float:
    """Bytes one block keeps for backward over `tokens` tokens (micro-batch x sequence) on one device.

    Korthikanti et al. 2022's counting applied to this block (checked against
    torch.autograd.graph.saved_tensors_hooks on the CPU, see tests/test_parallel_plan.py). Per token:
    two norm sites (`norm_site_bytes`); attention (/ tp): the rotated q, repeated k and v, and the
    SDPA output, which is also wo's input (4 e h; RoPE's complex multiply keeps only the rotation
    table); feed-forward (/ tp): w1 and w3 outputs, silu output and the product (4 e f).
    `selective` keeps the block input and the outputs of the seven matmuls and of attention (what
    memory.policy 'selective' saves), and recomputes norms, RoPE, SiLU and products:
    e (5 h + 2 h_kv + 2 f) / tp. `full` keeps the block input (e h / tp). Checked against the fake-tensor
    profile of steward.memory.profile (within 0.2% for keep and full, 8% for selective)."""
    h, hkv, f = args.dim, args.kv_heads * args.head_dim, args.ffn_dim
    if recompute == "full":
        per_token = e * h / tp
    elif recompute == "selective":
        per_token = e * (5 * h + 2 * hkv + 2 * f) / tp
    else:
        # the attention norm feeds wq, wk, wv; the feed-forward norm w1, w3
        per_token = (norm_site_bytes(h, tp, e, autocast, 3) + norm_site_bytes(h, tp, e, autocast, 2)
                     + (4 * e * h + 4 * e * f) / tp)
    return tokens * per_token


def loss_activation_bytes(args: ModelArgs, tokens: int, tp: int, e: int, autocast: bool = False) -> float:
    """The last stage's extra: the final norm site, and at the loss's backward three fp32 vocabulary-wide
    tensors per token (log-softmax output, the loss gradient, the log-softmax gradient)."""
    return tokens * (norm_site_bytes(args.dim, tp, e, autocast) + 12 * args.vocab_size)


# ---- collectives (alpha-beta, ring algorithms) ---------------------------------------------------


def all_reduce_time(nbytes: float, n: int, link: Link) -> float:
    if n <= 1 or nbytes <= 0:
        return 0.0
    return link.base_latency + 2 * (n - 1) * link.latency + 2 * (n - 1) / n * nbytes / link.effective_bandwidth


def gather_time(nbytes: float, n: int, link: Link) -> float:
    """All-gather or reduce-scatter of a buffer of `nbytes` (the full, gathered size)."""
    if n <= 1 or nbytes <= 0:
        return 0.0
    return link.base_latency + (n - 1) * link.latency + (n - 1) / n * nbytes / link.effective_bandwidth


def p2p_time(nbytes: float, link: Link) -> float:
    return link.base_latency + link.latency + nbytes / link.effective_bandwidth


def _link_class(cluster: Cluster, link: Link) -> str:
    return "intra" if link is cluster.intra else "inter"


# ---- prediction ------------------------------------------------------------------------------------


@dataclass
class Calibration:
    """Figures the prediction needs beyond the cluster: per-layer framework overhead (seconds per
    layer per micro-batch for forward + backward) and whether the host waits for the device."""

    layer_overhead_s: float = 0.0
    layer_overhead_tp_s: float = 0.0
    """The same block under tensor parallel (DTensor dispatch) and under FSDP2 (its hooks)."""
    layer_overhead_fsdp_s: float = 0.0
    synchronous: bool = False
    """CPU: every op's dispatch cost adds to its run time; GPU: launches overlap with device work."""

    def overhead(self, tp: bool, fsdp: bool) -> float:
        extra_tp = max(0.0, self.layer_overhead_tp_s - self.layer_overhead_s) if tp else 0.0
        extra_fsdp = max(0.0, self.layer_overhead_fsdp_s - self.layer_overhead_s) if fsdp else 0.0
        return self.layer_overhead_s + extra_tp + extra_fsdp


def calibration_for(cluster: Cluster) -> Calibration:
    """The cluster device's per-layer overheads (its preset's, or this host's calibration where the
    cluster was discovered here)."""
    o = cluster.device.layer_overhead
    plain = o.get("plain", 0.0)
    return Calibration(layer_overhead_s=plain, layer_overhead_tp_s=o.get("tp", plain),
                       layer_overhead_fsdp_s=o.get("fsdp", plain), synchronous=cluster.device.kind == "cpu")


def predict(req: Request, lay: Layout, cal: Calibration | None = None) -> Prediction:
    """Memory per device and step time of `lay` for `req` (see the module docstring)."""
    cal = cal or Calibration(synchronous=req.cluster.device.kind == "cpu")
    args, cl, e = req.args, req.cluster, req.act_bytes
    dev = cl.device
    tp, pp, rep, shard, mb = lay.tp, lay.pp, lay.dp_replicate, lay.dp_shard, lay.micro_batch_size
    dp = rep * shard
    local_batch = req.global_batch // dp
    n_micro = local_batch // mb
    s = req.seq_len
    tokens_mb = mb * s
    bf16 = e == 2
    fsdp = shard > 1 or (rep > 1 and (tp > 1 or pp > 1))  # ParallelDims.uses_fsdp
    ddp = rep > 1 and not fsdp
    autocast = bf16 and not fsdp  # FSDP2 casts the parameters; elsewhere the trainer autocasts

    # links: ranks fill a node before the next; mesh order (pp, dp_replicate, dp_shard, tp)
    def link(n: int, stride: int) -> Link:
        if req.placement_aware or cl.nodes == 1:
            return cl.link(n, stride)
        return cl.inter if n > 1 else cl.intra

    tp_link = link(tp, 1)
    shard_link = link(shard, tp)
    rep_link = link(rep, tp * shard)
    pp_link = link(pp, tp * shard * rep)

    # ---- memory, per stage; the fullest stage counts
    blocks = stage_blocks(args.n_layers, pp)
    bp = block_params(args)
    stages = []
    for st in range(pp):
        p_local = stage_params(args, pp, st) / tp  # norms are replicated under tp: a small overcount
        p_sharded = p_local / shard if fsdp else p_local
        params = 4 * p_sharded  # fp32 master weights
        grads = 4 * p_sharded
        optim = 8 * p_sharded  # AdamW exp_avg, exp_avg_sq
        copies = 0.0
        if fsdp:
            # unsharded copies in the compute dtype: two blocks in flight (prefetch), or under pp the
            # whole stage (kept gathered between micro-batches), plus one block's unsharded gradient
            wbytes = 2 if bf16 else 4
            in_flight = blocks[st] if pp > 1 else min(2, blocks[st])
            copies = wbytes * in_flight * bp / tp + 4 * bp / tp
            if st == 0 or st == pp - 1:
                copies += wbytes * args.vocab_size * args.dim / tp
            if n_micro > 1 and pp == 1:
                grads = 4 * p_local  # gradient sync off between micro-batches keeps them unsharded
        elif ddp:
            copies += 4 * p_local  # DDP's gradient buckets: a copy of the gradients, allocated once
        if bf16 and not fsdp:
            copies += 2 * p_local  # autocast's bf16 weight copies
        in_flight_mb = min(pp - st, n_micro) if pp > 1 else 1
        act_layer = layer_activation_bytes(args, tokens_mb, tp, lay.recompute, e, autocast)
        acts = act_layer * blocks[st] * in_flight_mb
        if lay.recompute == "full":  # one block's activations rebuilt during its backward
            acts += layer_activation_bytes(args, tokens_mb, tp, "none", e, autocast)
        elif lay.recompute == "selective":
            acts += layer_activation_bytes(args, tokens_mb, tp, "none", e, autocast) - act_layer
        if st == pp - 1:
            acts += loss_activation_bytes(args, tokens_mb, tp, e, autocast)
        # gradients exist alongside activations once accumulation carries them between micro-batches;
        # otherwise the peak is the larger of activations at the start of backward and gradients at
        # its end (with the optimizer's temporaries: one gradient-sized buffer for foreach AdamW)
        # (the breakdown describes that peak, so its parts sum to the total)
        if n_micro > 1:
            at_peak = {"gradients": grads, "activations": acts}
        elif acts >= grads + 4 * p_sharded:
            at_peak = {"gradients": 0.0, "activations": acts}
        else:
            at_peak = {"gradients": grads + 4 * p_sharded, "activations": 0.0}
        total = params + optim + copies + at_peak["gradients"] + at_peak["activations"]
        stages.append({"params": params, "optimizer": optim, "weight_copies": copies, **at_peak, "total": total})
    worst = max(stages, key=lambda x: x["total"])

    # ---- compute time per micro-batch on the slowest stage
    dtype = req.dtype if req.dtype in dev.peak_flops else next(iter(dev.peak_flops))
    rate = dev.flops(dtype)
    mem_bw = dev.memory_bandwidth
    # CPU worker processes beyond the cores share them: each gets its fraction of a core
    share = min(1.0, cl.cores_per_node / cl.devices_per_node) if cl.cores_per_node else 1.0
    rate, mem_bw = rate * share, mem_bw * share
    h, v = args.dim, args.vocab_size
    # matmul FLOPs per token: 6 x parameters of the block's linears; attention scores with the causal
    # mask's saving (fused kernels skip the masked half): 6 h s
    layer_flops = (6 * (bp - 2 * h) + 6 * h * s) * tokens_mb / tp
    recompute_flops = layer_flops / 3 if lay.recompute == "full" else 0.0
    head_flops = 6 * h * v * tokens_mb / tp
    layer_traffic = ELEMENTWISE_TRAFFIC * layer_activation_bytes(args, tokens_mb, tp, "none", e, autocast)
    if lay.recompute in ("selective", "full"):
        layer_traffic *= 1.25  # the forward's element-wise work runs again (a quarter of the traffic)
    loss_traffic = loss_activation_bytes(args, tokens_mb, tp, e, autocast)

    overhead = cal.overhead(tp > 1, fsdp) / share

    def layer_time() -> float:
        busy = (layer_flops + recompute_flops) / rate + layer_traffic / mem_bw
        return busy + overhead if cal.synchronous else max(busy, overhead)

    # tensor parallel: per block and micro-batch, forward all-gathers twice and reduce-scatters
    # twice a [mb, s, h] activation, backward the same; full recompute repeats the forward's four,
    # selective the two all-gathers (their outputs are recomputed, not kept)
    act_full = tokens_mb * h * e
    n_coll = 8 + {"full": 4, "selective": 2}.get(lay.recompute, 0)
    tp_per_layer = n_coll * gather_time(act_full, tp, tp_link)
    tp_bytes_layer = n_coll * (tp - 1) / tp * act_full if tp > 1 else 0
    stage_compute, stage_tp, tp_bytes_stage = [], [], []
    for st in range(pp):
        c = blocks[st] * layer_time()
        t = blocks[st] * tp_per_layer
        b = blocks[st] * tp_bytes_layer
        if st == pp - 1:
            c += head_flops / rate + loss_traffic / mem_bw
            # head: all-gather the sequence in, the logits out (forward), reduce-scatter back
            t += 2 * gather_time(act_full, tp, tp_link) + gather_time(tokens_mb * v * e, tp, tp_link)
            b += (2 * act_full + tokens_mb * v * e) * (tp - 1) / tp if tp > 1 else 0
        if st == 0:
            t += 2 * gather_time(act_full, tp, tp_link)  # embedding's reduce-scatter and its backward
            b += 2 * act_full * (tp - 1) / tp if tp > 1 else 0
        stage_compute.append(c)
        stage_tp.append(t)
        tp_bytes_stage.append(b)
    stage_time = [c + t for c, t in zip(stage_compute, stage_tp)]
    slowest = max(range(pp), key=lambda i: stage_time[i])
    p2p = p2p_time(act_full / tp, pp_link) if pp > 1 else 0.0
    slot = max(stage_time) + 2 * p2p
    pipeline_time = (n_micro + pp - 1) * slot
    bubble = (pp - 1) * max(stage_time)  # the sends of those slots are in pipeline_p2p
    compute_only = n_micro * max(stage_time)

    # ---- data parallel: per step, on the fullest stage
    p_local = max(stage_params(args, pp, st) for st in range(pp)) / tp
    wbytes = 2 if bf16 else 4
    dp_time = 0.0
    dp_bytes_shard = dp_bytes_rep = 0.0
    if fsdp:
        gathers = 1 if pp > 1 else 2 * n_micro  # forward and backward per micro-batch (resharded)
        # one collective per block and one for the root's parameters, each paying the latency
        groups = max(blocks) + 1
        ag = groups * gather_time(wbytes * p_local / groups, shard, shard_link)
        rs = groups * gather_time(4 * p_local / groups, shard, shard_link)
        ar = groups * all_reduce_time(4 * p_local / shard / groups, rep, rep_link)
        dp_time = gathers * ag + rs + ar
        if shard > 1:
            dp_bytes_shard = (gathers * wbytes + 4) * p_local * (shard - 1) / shard
        if rep > 1:
            dp_bytes_rep = 2 * (rep - 1) / rep * 4 * p_local / shard
        exposed_once = (ag + rs) / groups  # the first gather, the last reduce
    elif ddp:
        dp_time = all_reduce_time(4 * p_local, rep, rep_link)
        dp_bytes_rep = 2 * (rep - 1) / rep * 4 * p_local
        exposed_once = dp_time / max(1, args.n_layers // pp)
    else:
        exposed_once = 0.0
    window = compute_only if pp == 1 else max(stage_time)  # under pp only the last micro-batch overlaps
    if cal.synchronous:
        dp_exposed = dp_time  # no device streams: the CPU waits for each collective
    else:
        dp_exposed = max(0.0, dp_time - window) + exposed_once if dp_time else 0.0

    optimizer_time = ADAM_BYTES_PER_PARAM * (p_local / (shard if fsdp else 1)) / mem_bw
    step = pipeline_time + dp_exposed + optimizer_time

    tokens = req.global_batch * s
    model_flops = flops_per_token(args, s) * tokens
    peak = dev.peak_flops.get(dtype, rate)
    mfu = model_flops / (step * lay.world * peak)

    comm = {"intra": 0.0, "inter": 0.0}
    comm[_link_class(cl, tp_link)] += max(tp_bytes_stage) * n_micro
    if pp > 1:
        comm[_link_class(cl, pp_link)] += 2 * n_micro * act_full / tp
    comm[_link_class(cl, shard_link)] += dp_bytes_shard
    comm[_link_class(cl, rep_link)] += dp_bytes_rep
    comm["total"] = comm["intra"] + comm["inter"]
    return Prediction(
        step_time_s=step,
        memory_per_device_bytes=worst["total"],
        tokens_per_s=tokens / step,
        mfu=mfu,
        comm_bytes_per_step=comm,
        time={"compute": n_micro * stage_compute[slowest], "tensor_parallel": n_micro * stage_tp[slowest],
              "pipeline_bubble": bubble, "pipeline_p2p": 2 * p2p * (n_micro + pp - 1),
              "data_parallel_exposed": dp_exposed, "data_parallel_total": dp_time, "optimizer": optimizer_time},
        memory={k: worst[k] for k in ("params", "gradients", "optimizer", "weight_copies", "activations")},
    )


# ---- enumeration and choice ----------------------------------------------------------------------


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def layouts(req: Request) -> Iterator[Layout]:
    """Every valid layout for the request's cluster, model and batch."""
    args, cl = req.args, req.cluster
    world = cl.world_size
    tps = [t for t in divisors(world)
           if args.n_heads % t == 0 and args.kv_heads % t == 0 and req.seq_len % t == 0
           and (req.allow_tp_across_nodes or (t <= cl.devices_per_node and cl.devices_per_node % t == 0))]
    for tp in tps:
        for pp in divisors(world // tp):
            if pp > args.n_layers:
                continue
            dp = world // (tp * pp)
            if req.global_batch % dp:
                continue
            local = req.global_batch // dp
            for shard in divisors(dp):
                for mb in divisors(local):
                    if local // mb < pp:
                        continue
                    for rc in RECOMPUTE:
                        yield Layout(tp, pp, dp // shard, shard, mb, rc)


@dataclass
class PlanResult:
    best: Plan
    alternatives: list[Plan]
    considered: int
    fitting: int
    request: Request

    def to_dict(self) -> dict[str, Any]:
        req = self.request
        return {
            **self.best.to_dict(),
            "alternatives": [p.to_dict() for p in self.alternatives],
            "considered": self.considered,
            "fitting": self.fitting,
            "request": {"model": req.name, "global_batch": req.global_batch, "seq_len": req.seq_len,
                        "cluster": req.cluster.name, "nodes": req.cluster.nodes,
                        "devices_per_node": req.cluster.devices_per_node, "memory_limit_bytes": req.memory_limit,
                        "dtype": req.dtype},
        }


def plan(req: Request, top: int = 5, cal: Calibration | None = None) -> PlanResult:
    """The fastest layout within the memory limit, and the next `top - 1`; PlanError when none fits."""
    if req.global_batch < 1 or req.seq_len < 1:
        raise PlanError("--batch and --seq-len must be positive")
    if req.seq_len > req.args.max_seq_len:
        raise PlanError(f"--seq-len: {req.seq_len} exceeds the model's max_seq_len {req.args.max_seq_len}")
    cal = cal or calibration_for(req.cluster)
    fitting: list[Plan] = []
    smallest: Plan | None = None
    considered = 0
    for lay in layouts(req):
        considered += 1
        pred = predict(req, lay, cal)
        p = Plan(lay, pred, fits=pred.memory_per_device_bytes <= req.memory_limit)
        if p.fits:
            fitting.append(p)
        elif smallest is None or pred.memory_per_device_bytes < smallest.predicted.memory_per_device_bytes:
            smallest = p
    if not considered:
        raise PlanError(
            f"--batch: a global batch of {req.global_batch} cannot be split over any layout of "
            f"{req.cluster.world_size} devices (it must be a multiple of the data-parallel degree, with at least "
            "one micro-batch per pipeline stage); raise it or use fewer devices"
        )
    if not fitting:
        need = smallest.predicted.memory_per_device_bytes
        raise PlanError(
            f"memory: no layout fits {req.memory_limit / GIB:.1f} GiB per device; the smallest ({smallest.layout}) "
            f"needs {need / GIB:.1f} GiB, short by {(need - req.memory_limit) / GIB:.1f} GiB per device; add nodes, "
            "lower the batch or sequence length, or raise the limit"
        )
    fitting.sort(key=lambda p: (p.predicted.step_time_s, p.predicted.memory_per_device_bytes))
    return PlanResult(fitting[0], fitting[1:top], considered, len(fitting), req)


# ---- the trainer's parallel.auto --------------------------------------------------------------------


def request_from_config(cfg, world_size: int, local_world_size: int) -> Request:
    """The planning request a training config makes on the running job's cluster."""
    import torch

    from steward.models.gpt import build_model_args
    from steward.parallel.topology import discover_cluster, load_cluster

    nodes = max(1, world_size // max(1, local_world_size))
    if cfg.parallel.cluster:
        cluster = load_cluster(cfg.parallel.cluster, nodes=nodes)
        cluster = dataclasses.replace(cluster, devices_per_node=local_world_size)
    else:
        cluster = discover_cluster(world_size, local_world_size)
    args = build_model_args(cfg.model.flavor, vocab_size=cfg.model.vocab_size, max_seq_len=cfg.train.seq_len)
    cuda = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
    bf16 = cfg.train.mixed_precision == "bf16" or (cfg.train.mixed_precision == "auto" and cuda)
    if cfg.memory.budget_gb > 0:
        limit = cfg.memory.budget_gb * 1e9
    else:
        limit = cluster.device.memory_bytes * cfg.memory.budget_fraction
    return Request(args=args, global_batch=cfg.train.batch_size, seq_len=cfg.train.seq_len, cluster=cluster,
                   memory_limit=limit, dtype="bf16" if bf16 else "fp32",
                   allow_tp_across_nodes=cfg.parallel.tp_across_nodes, name=cfg.model.flavor)


def apply_auto_plan(cfg, world_size: int, local_world_size: int) -> Plan:
    """The plan `steward train --parallel.auto true` runs (raises ConfigError when none fits)."""
    from steward.config import ConfigError

    if cfg.model.hf_path:
        raise ConfigError("parallel.auto: the planner needs a model.flavor, not model.hf_path")
    try:
        return plan(request_from_config(cfg, world_size, local_world_size)).best
    except PlanError as e:
        raise ConfigError(f"parallel.auto: {e}") from None


def format_plan(result: PlanResult) -> list[str]:
    """Lines for `steward plan`: the best layout with breakdowns, then the alternatives."""
    req = result.request
    out = [
        f"model {req.name}: {req.args.n_layers} layers, dim {req.args.dim}; global batch {req.global_batch} x "
        f"{req.seq_len} tokens; {req.cluster.name}: {req.cluster.nodes} x {req.cluster.devices_per_node} "
        f"{req.cluster.device.name}; limit {req.memory_limit / GIB:.1f} GiB per device ({req.dtype})",
        f"{result.considered} layouts considered, {result.fitting} fit",
        "",
    ]
    for i, p in enumerate([result.best, *result.alternatives]):
        pr = p.predicted
        out.append(f"{'best' if i == 0 else f'#{i + 1}':<5} {p.layout}")
        out.append(f"      step {pr.step_time_s:.4g} s, {pr.tokens_per_s:.4g} tokens/s, MFU {pr.mfu:.1%}, "
                   f"memory {pr.memory_per_device_bytes / GIB:.2f} GiB/device, "
                   f"comm {pr.comm_bytes_per_step['intra'] / 1e9:.3g} GB intra + "
                   f"{pr.comm_bytes_per_step['inter'] / 1e9:.3g} GB inter per device")
        if i == 0:
            out.append("      time:   " + ", ".join(f"{k} {v:.3g} s" for k, v in pr.time.items()))
            out.append("      memory: " + ", ".join(f"{k} {v / GIB:.3g} GiB" for k, v in pr.memory.items()))
    return out


__all__ = [
    "Calibration", "Layout", "Plan", "PlanError", "PlanResult", "Prediction", "Request", "apply_auto_plan",
    "format_plan", "layer_activation_bytes", "layouts", "plan", "predict", "request_from_config",
]
