"""The cost model: memory per device and step time of one layout (tp, pp, dp_replicate, dp_shard,
micro-batch, recompute) for a model, batch and cluster. The layout planner (`layout`) and the
simulator (`simulate`) ask it.

Memory per device (the fullest pipeline stage), counted with the one memory model (`footprint`):
  * parameters, gradients and AdamW states under the sharding (FSDP2 over dp_shard, tensor parallel
    over tp, the stage's blocks under pp), in the precision the trainer uses (fp32 master weights;
    bf16 gathered copies under FSDP2 mixed precision);
  * activations by the per-layer counting of Korthikanti et al. 2022 (`footprint.layer_activation_bytes`);
  * pipeline 1F1B: the first stage holds pp micro-batches in flight;
  * the loss: logits and their fp32 softmax and gradient on the last stage.
Step time: each GEMM at the rate of its shape, attention (fused or unfused), element-wise traffic over
memory bandwidth and a per-layer overhead (`kernels`, with constants fitted to published runs on GPUs,
this host's calibration on CPUs), every collective with the alpha-beta model on the link class it
crosses at a bandwidth that grows with the message (tensor parallel on the critical path, except the
backward reduce-scatters Megatron's sequence parallelism overlaps; FSDP/DDP hidden behind the compute of
their own phase (a micro-batch's forward, its backward, the last backward), a hidden second still costing
`contention`, except one block; pipeline sends per micro-batch), the 1F1B bubble ((pp - 1) extra
micro-batch slots) and the optimizer's memory traffic; on a CPU host whose calibration holds a fit on
its trainer steps (`hostfit`), the trainer's per-step overhead too.
The training code's memory habits are the request's `Implementation` (Steward's trainer by default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from steward.models.gpt import ModelArgs, block_params, flops_per_token
from steward.planning import kernels
from steward.planning.footprint import (
    BF16_BYTES,
    FP32_BYTES,
    autocast_copy_bytes,
    ddp_bucket_bytes,
    fsdp_unsharded_bytes,
    gpt_layer_activation_bytes,
    layer_activation_bytes,
    loss_activation_bytes,
    model_state_bytes,
    stage_activation_bytes,
    stage_blocks,
    stage_params,
)
from steward.planning.kernels import FITTED, NEUTRAL, Constants
from steward.planning.topology import Cluster, Link

ADAM_BYTES_PER_PARAM = 92
"""Bytes of memory traffic per parameter for one clipped AdamW step (foreach, fp32): m lerp 12, v
update 20, denominator 24, parameter update 16, weight decay 8, norm and clip 12."""

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

    @property
    def fsdp(self) -> bool:
        """FSDP2 wraps the model (ParallelDims.uses_fsdp): sharding, or replication composed with tp/pp."""
        return self.dp_shard > 1 or (self.dp_replicate > 1 and (self.tp > 1 or self.pp > 1))

    @property
    def ddp(self) -> bool:
        return self.dp_replicate > 1 and not self.fsdp

    def __str__(self) -> str:
        return (f"tp={self.tp} pp={self.pp} dp_replicate={self.dp_replicate} dp_shard={self.dp_shard} "
                f"micro_batch={self.micro_batch_size} recompute={self.recompute}")


@dataclass(frozen=True)
class Implementation:
    """How the training code running a layout keeps memory and runs attention. The defaults are Steward's
    trainer; published runs name their framework's (`published.FRAMEWORKS`)."""

    unfused_attention: bool = False
    """Attention materialises the s x s scores (Megatron-LM 2021/2022, BLOOM) instead of a fused kernel."""
    gpt_activations: bool = False
    """Activations as a GPT block keeps them (16-bit LayerNorm, GELU; `footprint.gpt_layer_activation_bytes`)
    instead of Steward's decoder (fp32 RMSNorm statistics, SwiGLU)."""
    fsdp_sync_each_micro_batch: bool = False
    """FSDP reduce-scatters gradients after every micro-batch (torchtitan, Composer), so they stay
    sharded; Steward's trainer turns the sync off while micro-batches accumulate."""
    optimizer_sharded: bool = False
    """ZeRO-1 / distributed optimizer: fp32 master weights and AdamW moments sharded over dp_replicate."""
    shards_master_weights: bool = True
    """With optimizer_sharded, the fp32 parameters are master copies the optimizer owns and shards with the
    moments (Megatron's distributed optimizer). False: they are the model's own weights, whole on every
    rank (Steward's parallel.shard_optimizer, torch's ZeroRedundancyOptimizer); only the moments shard."""
    gradients_sharded: bool = False
    """ZeRO-2 (Steward's parallel.shard_gradients): no DDP gradient buckets; each gradient is reduced onto
    its owner and dropped elsewhere (full gradients exist only at the end of backward, as counted)."""
    loss_bytes_per_logit: int = 12
    """Bytes per token and vocabulary entry the loss keeps for backward (three fp32 tensors in Steward)."""
    selective_attention_core: bool = False
    """'selective' recomputes only the attention core (Korthikanti et al. 2022's selective recompute, as
    Megatron-LM runs it): no extra tensor-parallel collectives or element-wise pass; Steward's 'selective'
    recomputes norms, RoPE and activations, and the tensor-parallel all-gathers before them."""
    vocab_parallel_loss: bool = False
    """Under tensor parallel the loss is computed on vocabulary shards (Megatron-LM), so the logits are
    not all-gathered."""
    optimizer_bytes_per_param: int = ADAM_BYTES_PER_PARAM
    """Memory traffic of one optimizer step per parameter held (Steward: clipped foreach AdamW)."""
    param_bytes: int = FP32_BYTES
    """Bytes per element of the parameters, their gradients and AdamW's moments (Steward: fp32 master
    weights); 2 where the training code casts the model to bf16 and has no master copy."""
    compiled: bool = False
    """The model runs under torch.compile (element-wise kernels fused; `kernels.Constants.compiled_elementwise`)."""
    tp_backward_overlap: bool = False
    """The backward reduce-scatter of a column-parallel layer's input gradient runs beside its weight-gradient
    GEMM (Megatron-LM's sequence parallelism, LinearWithGradAccumulationAndAsyncCommunication)."""
    selective_recompute_matmuls: tuple[str, ...] = ()
    """Linear layers (wq, wk, wv, wo, w1, w3, w2) whose forward 'selective' runs again in backward
    (torchtitan's per-op policy saves every other matmul); Steward's 'selective' keeps all seven."""
    cast_model: bool = False
    """The training code casts the model to 16 bits itself and keeps the fp32 master weights in its optimizer
    (Megatron-LM's Float16Module, megatron/model/module.py), so nothing runs under torch.autocast: the
    element-wise kernels read and write 16-bit tensors, as under FSDP2's mixed precision. Step time only:
    the memory is autocast's (fp32 master weights and a 16-bit copy of them)."""
    sequence_parallel: bool = True
    """Under tensor parallel the norms run on each rank's 1/tp slice of the sequence (Steward, torchtitan,
    KempnerForge, Megatron-LM from 2022). False: every tensor-parallel rank runs them on the whole sequence
    (Megatron-LM 2021, Megatron-DeepSpeed), so their element-wise traffic is not divided by tp (step time only)."""


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
    impl: Implementation = field(default_factory=Implementation)

    @property
    def act_bytes(self) -> int:
        return BF16_BYTES if self.dtype in ("bf16", "fp16") else FP32_BYTES

    def micro_batches(self, lay: Layout) -> int:
        """Micro-batches per step on each rank."""
        local_batch = self.global_batch // lay.dp
        return local_batch // lay.micro_batch_size

    def autocast(self, lay: Layout) -> bool:
        """bf16 autocast over fp32 weights: FSDP2 casts the parameters; elsewhere the trainer autocasts."""
        return self.act_bytes == BF16_BYTES and not lay.fsdp and self.impl.param_bytes == FP32_BYTES


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
class Calibration:
    """Figures the prediction needs beyond the cluster: per-layer framework overhead (seconds per
    layer per micro-batch for forward + backward) and whether the host waits for the device."""

    layer_overhead_s: float = 0.0
    layer_overhead_tp_s: float = 0.0
    """The same block under tensor parallel (DTensor dispatch) and under FSDP2 (its hooks)."""
    layer_overhead_fsdp_s: float = 0.0
    synchronous: bool = False
    """CPU: every op's dispatch cost adds to its run time; GPU: launches overlap with device work."""
    constants: Constants | None = None
    """The kernels' constants; None: `kernels.FITTED` on GPUs, `kernels.NEUTRAL` on CPUs."""
    step_overhead_s: float = 0.0
    """Seconds per step the trainer spends beyond the layers and the optimizer's traffic (the loss, data,
    logging, zero_grad, the scheduler): fitted on this host's trainer steps (`hostfit`), 0 elsewhere."""
    step_overhead_tp_s: float = 0.0
    """Seconds per step beyond `step_overhead_s` under tensor parallel (DTensor), and under FSDP2 (`hostfit`)."""
    step_overhead_fsdp_s: float = 0.0
    optimizer_bytes_per_param: float | None = None
    """Memory traffic per parameter of one optimizer step, at the device's memory bandwidth, as this host's
    trainer steps show it (`hostfit`); None: the implementation's count (`Implementation`)."""

    def kernel_constants(self) -> Constants:
        if self.constants is not None:
            return self.constants
        return NEUTRAL if self.synchronous else FITTED

    def overhead(self, tp: bool, fsdp: bool) -> float:
        extra_tp = max(0.0, self.layer_overhead_tp_s - self.layer_overhead_s) if tp else 0.0
        extra_fsdp = max(0.0, self.layer_overhead_fsdp_s - self.layer_overhead_s) if fsdp else 0.0
        return self.layer_overhead_s + extra_tp + extra_fsdp

    def step_overhead(self, tp: bool, fsdp: bool) -> float:
        return self.step_overhead_s + (self.step_overhead_tp_s if tp else 0.0) + (self.step_overhead_fsdp_s if fsdp else 0.0)


def calibration_for(cluster: Cluster) -> Calibration:
    """The cluster device's per-layer overheads (its preset's, or this host's calibration where the
    cluster was discovered here); on a CPU with calibrated kernel figures, the kernels' constants from
    them (`host_constants`), and with constants fitted on its trainer steps, those (`with_trainer_fit`)."""
    o = cluster.device.layer_overhead
    plain = o.get("plain", 0.0)
    cpu = cluster.device.kind == "cpu"
    cal = Calibration(layer_overhead_s=plain, layer_overhead_tp_s=o.get("tp", plain),
                      layer_overhead_fsdp_s=o.get("fsdp", plain), synchronous=cpu,
                      constants=host_constants(cluster) if cpu and cluster.device.kernels else None)
    return with_trainer_fit(cal, cluster.device.trainer_fit) if cpu and cluster.device.trainer_fit else cal


def with_trainer_fit(cal: Calibration, fit: dict[str, float]) -> Calibration:
    """`cal` with the constants fitted on this host's trainer steps (`hostfit`): GEMMs and attention at
    'gemm' of their calibrated rates, 'layer_overhead_s' per block and micro-batch in place of the isolated
    block's (the measured tensor-parallel and FSDP2 extras kept on top of it), 'step_overhead_s' per step
    (and 'step_overhead_tp_s', 'step_overhead_fsdp_s' more under those wrappers), and
    'optimizer_bytes_per_param' of traffic per parameter for the optimizer step."""
    c = cal.kernel_constants()
    shift = fit["layer_overhead_s"] - cal.layer_overhead_s
    return dataclasses.replace(
        cal, constants=dataclasses.replace(c, gemm=c.gemm * fit["gemm"]), layer_overhead_s=fit["layer_overhead_s"],
        layer_overhead_tp_s=cal.layer_overhead_tp_s + shift, layer_overhead_fsdp_s=cal.layer_overhead_fsdp_s + shift,
        step_overhead_s=fit["step_overhead_s"], step_overhead_tp_s=fit["step_overhead_tp_s"],
        step_overhead_fsdp_s=fit["step_overhead_fsdp_s"], optimizer_bytes_per_param=fit["optimizer_bytes_per_param"])


def host_constants(cluster: Cluster) -> Constants:
    """The kernels' constants of a calibrated host, from its measured figures (nothing fitted): the
    GEMM rate by shape normalised so the calibration's own square product (of size 'matmul_n') runs
    at the measured rate, attention at its measured fraction, and element-wise traffic at the
    element-wise kernels' bandwidth instead of a copy's."""
    k, dev = cluster.device.kernels, cluster.device
    half = k.get("gemm_half", 0.0)
    intensity = k.get("matmul_n", 0.0) / 3
    gemm = (intensity + half) / intensity if intensity else 1.0
    ew = k.get("elementwise_bandwidth", 0.0)
    elementwise = NEUTRAL.elementwise * (dev.memory_bandwidth / ew if ew and dev.memory_bandwidth else 1.0)
    return dataclasses.replace(NEUTRAL, gemm=gemm, gemm_half=half, attention=k.get("attention", 1.0),
                               elementwise=elementwise)


# ---- collectives (alpha-beta, ring algorithms) ---------------------------------------------------


def _bandwidth(link: Link, message: float, c: Constants) -> float:
    return kernels.collective_bandwidth(link.effective_bandwidth, message, c)


def all_reduce_time(nbytes: float, n: int, link: Link, c: Constants = NEUTRAL) -> float:
    if n <= 1 or nbytes <= 0:
        return 0.0
    bw = _bandwidth(link, nbytes, c)
    return link.base_latency + 2 * (n - 1) * link.latency + 2 * (n - 1) / n * nbytes / bw


def gather_time(nbytes: float, n: int, link: Link, c: Constants = NEUTRAL) -> float:
    """All-gather or reduce-scatter of a buffer of `nbytes` (the full, gathered size)."""
    if n <= 1 or nbytes <= 0:
        return 0.0
    return link.base_latency + (n - 1) * link.latency + (n - 1) / n * nbytes / _bandwidth(link, nbytes, c)


def p2p_time(nbytes: float, link: Link, c: Constants = NEUTRAL) -> float:
    return link.base_latency + link.latency + nbytes / _bandwidth(link, nbytes, c)


def _link_class(cluster: Cluster, link: Link) -> str:
    return "intra" if link is cluster.intra else "inter"


def _links(req: Request, lay: Layout) -> dict[str, Link]:
    """The link each mesh dim's collectives cross: ranks fill a node before the next; mesh order
    (pp, dp_replicate, dp_shard, tp). A group that spans nodes with r of its ranks in each node runs its
    rings over r network adapters at once (NCCL builds one ring per adapter on multi-rail nodes such as
    DGX: node-to-node bandwidth = r adapters), up to the node's own link."""
    cl = req.cluster

    def link(n: int, stride: int) -> Link:
        if not (req.placement_aware or cl.nodes == 1):
            return cl.inter if n > 1 else cl.intra
        lk = cl.link(n, stride)
        rails = min(n, cl.devices_per_node // stride) if stride < cl.devices_per_node else 1
        if lk is cl.inter and rails > 1:
            return dataclasses.replace(lk, bandwidth=min(lk.bandwidth * rails, cl.intra.bandwidth))
        return lk

    return {"tp": link(lay.tp, 1), "dp_shard": link(lay.dp_shard, lay.tp),
            "dp_replicate": link(lay.dp_replicate, lay.tp * lay.dp_shard),
            "pp": link(lay.pp, lay.tp * lay.dp_shard * lay.dp_replicate)}


# ---- memory ----------------------------------------------------------------------------------------


def _stage_memory(req: Request, lay: Layout, st: int) -> dict[str, float]:
    """Bytes on a device of pipeline stage `st` at the step's peak, by part, and their 'total'."""
    args, e, tp, pp, impl = req.args, req.act_bytes, lay.tp, lay.pp, req.impl
    n_micro = req.micro_batches(lay)
    blocks = stage_blocks(args.n_layers, pp)
    p_local = stage_params(args, pp, st) / tp  # norms are replicated under tp: a small overcount
    p_sharded = p_local / lay.dp_shard if lay.fsdp else p_local
    states = {k: v * impl.param_bytes / FP32_BYTES for k, v in model_state_bytes(p_sharded).items()}
    if impl.optimizer_sharded:
        if impl.shards_master_weights:
            states["params"] /= lay.dp_replicate
        states["optimizer"] /= lay.dp_replicate
    grads = states["grads"]
    copies = 0.0
    if lay.fsdp:
        # two blocks in flight (prefetch), or under pp the whole stage (kept gathered between
        # micro-batches); the root's vocabulary matrix on an end stage
        in_flight = blocks[st] if pp > 1 else min(2, blocks[st])
        root = args.vocab_size * args.dim if st == 0 or st == pp - 1 else 0
        copies = fsdp_unsharded_bytes(block_params(args), root, in_flight, e, tp)
        if n_micro > 1 and pp == 1 and not impl.fsdp_sync_each_micro_batch:
            grads = impl.param_bytes * p_local  # gradient sync off between micro-batches keeps them unsharded
    elif lay.ddp and not impl.gradients_sharded:
        copies += ddp_bucket_bytes(p_local)
    if req.autocast(lay):
        copies += autocast_copy_bytes(p_local)
    in_flight_mb = min(pp - st, n_micro) if pp > 1 else 1
    acts = stage_activation_bytes(args, lay.micro_batch_size * req.seq_len, tp, lay.recompute, e,
                                  req.autocast(lay), blocks[st], in_flight_mb, st == pp - 1,
                                  _gpt_layer(req, lay), impl.loss_bytes_per_logit)
    # gradients exist alongside activations once accumulation carries them between micro-batches;
    # otherwise the peak is the larger of activations at the start of backward and gradients at
    # its end (with the optimizer's temporaries: one gradient-sized buffer for foreach AdamW)
    # (the breakdown describes that peak, so its parts sum to the total)
    temporaries = FP32_BYTES * p_sharded
    if n_micro > 1:
        at_peak = {"gradients": grads, "activations": acts}
    elif acts >= grads + temporaries:
        at_peak = {"gradients": 0.0, "activations": acts}
    else:
        at_peak = {"gradients": grads + temporaries, "activations": 0.0}
    params, optim = states["params"], states["optimizer"]
    total = params + optim + copies + at_peak["gradients"] + at_peak["activations"]
    return {"params": params, "optimizer": optim, "weight_copies": copies, **at_peak, "total": total}


def _gpt_layer(req: Request, lay: Layout):
    """The per-layer activation counting of GPT-style training code, or None for Steward's decoder."""
    if not req.impl.gpt_activations:
        return None
    tokens, s = lay.micro_batch_size * req.seq_len, req.seq_len if req.impl.unfused_attention else 0

    def layer(recompute: str) -> float:
        return gpt_layer_activation_bytes(req.args, tokens, lay.tp, recompute, req.act_bytes, s)
    return layer


def device_memory(req: Request, lay: Layout) -> dict[str, float]:
    """Bytes per device of the fullest pipeline stage, by part, and their 'total'."""
    return max((_stage_memory(req, lay, st) for st in range(lay.pp)), key=lambda x: x["total"])


# ---- time --------------------------------------------------------------------------------------------


@dataclass
class _Rates:
    """What one device of the cluster reaches: matmul FLOP/s and memory bytes/s, CPU core sharing included."""

    dtype: str
    flops: float
    memory_bandwidth: float
    share: float

    @classmethod
    def of(cls, req: Request) -> _Rates:
        cl, dev = req.cluster, req.cluster.device
        dtype = req.dtype if req.dtype in dev.peak_flops else next(iter(dev.peak_flops))
        # CPU worker processes beyond the cores share them: each gets its fraction of a core
        share = min(1.0, cl.cores_per_node / cl.devices_per_node) if cl.cores_per_node else 1.0
        return cls(dtype, dev.flops(dtype) * share, dev.memory_bandwidth * share, share)


def _stage_times(req: Request, lay: Layout, cal: Calibration, rates: _Rates,
                 tp_link: Link) -> tuple[list[float], list[float], list[float]]:
    """Per pipeline stage and micro-batch: compute seconds, tensor-parallel seconds, tensor-parallel bytes."""
    args, e, tp, pp = req.args, req.act_bytes, lay.tp, lay.pp
    c = kernels.for_device(cal.kernel_constants(), req.cluster.device.name)
    tokens_mb = lay.micro_batch_size * req.seq_len
    autocast = req.autocast(lay) and not req.impl.cast_model
    blocks = stage_blocks(args.n_layers, pp)
    h, v = args.dim, args.vocab_size
    gemms = kernels.block_gemm_time(args, tokens_mb, tp, rates.flops, c)
    attention = kernels.attention_time(args, lay.micro_batch_size, req.seq_len, tp, rates.flops,
                                       rates.memory_bandwidth, c, req.impl.unfused_attention, e)
    matmul = gemms + attention
    core = req.impl.selective_attention_core and lay.recompute == "selective"
    # the forward a full recompute runs again: a third of a GEMM's forward and backward; of a fused
    # (flash) attention kernel's, 1 / 3.5, its backward doing 2.5 times its forward's FLOPs (it recomputes
    # the probabilities; Dao-AILab/flash-attention benchmarks/benchmark_flash_attention.py flops(), @0251105a)
    attention_forward = 1 / 3 if req.impl.unfused_attention else 1 / 3.5
    recompute_time = gemms / 3 + attention * attention_forward if lay.recompute == "full" else 0.0
    fused = c.compiled_elementwise if req.impl.compiled else 1.0
    layer_traffic = fused * c.elementwise * layer_activation_bytes(args, tokens_mb, tp, "none", e, autocast,
                                                                   req.impl.sequence_parallel)
    if core:  # the attention core's forward runs again
        recompute_time = attention * attention_forward
    elif lay.recompute in ("selective", "full"):
        layer_traffic *= 1.25  # the forward's element-wise work runs again (a quarter of the traffic)
    if lay.recompute == "selective" and req.impl.selective_recompute_matmuls:
        recompute_time += kernels.forward_gemm_time(args, tokens_mb, tp, rates.flops, c,
                                                    req.impl.selective_recompute_matmuls)
    loss_traffic = loss_activation_bytes(args, tokens_mb, tp if req.impl.sequence_parallel else 1, e, autocast)
    overhead = cal.overhead(tp > 1, lay.fsdp) / rates.share
    busy = matmul + recompute_time + layer_traffic / rates.memory_bandwidth + c.layer_overhead
    layer_time = busy + overhead if cal.synchronous else max(busy, overhead)

    act_full = tokens_mb * h * e
    tp_per_layer, tp_bytes_layer = _tp_layer(req, lay, c, rates, tp_link, core)
    stage_compute, stage_tp, tp_bytes_stage = [], [], []
    for st in range(pp):
        comp = blocks[st] * layer_time
        t = blocks[st] * tp_per_layer
        b = blocks[st] * tp_bytes_layer
        if st == pp - 1:
            comp += kernels.head_gemm_time(args, tokens_mb, tp, rates.flops, c) + loss_traffic / rates.memory_bandwidth
            # head: all-gather the sequence in, the logits out (forward), reduce-scatter back
            logits = 0 if req.impl.vocab_parallel_loss else tokens_mb * v * e
            t += 2 * gather_time(act_full, tp, tp_link, c) + gather_time(logits, tp, tp_link, c)
            b += (2 * act_full + logits) * (tp - 1) / tp if tp > 1 else 0
        if st == 0:
            t += 2 * gather_time(act_full, tp, tp_link, c)  # embedding's reduce-scatter and its backward
            b += 2 * act_full * (tp - 1) / tp if tp > 1 else 0
        stage_compute.append(comp)
        stage_tp.append(t)
        tp_bytes_stage.append(b)
    return stage_compute, stage_tp, tp_bytes_stage


def _tp_layer(req: Request, lay: Layout, c: Constants, rates: _Rates, tp_link: Link,
              core: bool) -> tuple[float, float]:
    """Seconds and bytes of one block's tensor-parallel collectives per micro-batch: forward all-gathers
    twice and reduce-scatters twice a [mb, s, h] activation, backward the same; full recompute repeats the
    forward's four, Steward's selective the two all-gathers (their outputs are recomputed, not kept).
    Under `tp_backward_overlap` the backward's two reduce-scatters of the column-parallel layers' input
    gradients run beside those layers' weight-gradient GEMMs, and only what outlasts them is exposed."""
    tp = lay.tp
    if tp <= 1:
        return 0.0, 0.0
    tokens_mb = lay.micro_batch_size * req.seq_len
    act_full = tokens_mb * req.args.dim * req.act_bytes
    n_coll = 8 + {"full": 4, "selective": 0 if core else 2}.get(lay.recompute, 0)
    one = gather_time(act_full, tp, tp_link, c)
    seconds = n_coll * one
    if req.impl.tp_backward_overlap:
        wgrad = kernels.forward_gemm_time(req.args, tokens_mb, tp, rates.flops, c, ("wq", "wk", "wv", "w1", "w3"))
        seconds -= min(2 * one, wgrad)  # hidden up to the weight-gradient GEMMs' time
    return seconds, n_coll * (tp - 1) / tp * act_full


@dataclass
class _DataParallel:
    time: float = 0.0
    """Seconds of the step's data-parallel collectives, overlapped or not."""
    exposed_once: float = 0.0
    """What no overlap hides: the first gather and the last reduce."""
    forward: float = 0.0
    """Seconds of collectives in each micro-batch's forward (FSDP's all-gathers)."""
    backward: float = 0.0
    """Seconds of collectives in each micro-batch's backward (all-gathers; reduce-scatters where every
    micro-batch syncs)."""
    last: float = 0.0
    """Seconds of collectives only the last micro-batch's backward runs (the gradient sync)."""
    bytes_shard: float = 0.0
    bytes_replicate: float = 0.0

    def exposed(self, n_micro: int, slot: float, forward_share: float, c: Constants) -> float:
        """Seconds the step waits for these collectives when each phase's collectives overlap `overlap` of
        that phase's compute (a micro-batch's forward is `forward_share` of its `slot`, its backward the
        rest), the hidden part still costing `contention` of its time, plus what no overlap hides."""
        if not self.time:
            return 0.0
        hide_f, hide_b = c.overlap * forward_share * slot, c.overlap * (1 - forward_share) * slot
        waits = (n_micro * max(0.0, self.forward - hide_f) + (n_micro - 1) * max(0.0, self.backward - hide_b)
                 + max(0.0, self.backward + self.last - hide_b))
        return waits + c.contention * (self.time - waits) + self.exposed_once


def _data_parallel(req: Request, lay: Layout, links: dict[str, Link], p_local: float,
                   c: Constants) -> _DataParallel:
    """Per step, on the fullest stage (`p_local` parameters per tensor-parallel rank). Under pipeline
    parallelism FSDP gathers once and keeps the stage gathered: one phase, the last micro-batch's backward."""
    args, shard, rep = req.args, lay.dp_shard, lay.dp_replicate
    n_micro = req.micro_batches(lay)
    if lay.fsdp:
        compute_bytes = req.act_bytes
        gathers = 1 if lay.pp > 1 else 2 * n_micro  # forward and backward per micro-batch
        # one collective per block and one for the root's parameters, each paying the latency
        groups = max(stage_blocks(args.n_layers, lay.pp)) + 1
        ag = groups * gather_time(compute_bytes * p_local / groups, shard, links["dp_shard"], c)
        rs = groups * gather_time(FP32_BYTES * p_local / groups, shard, links["dp_shard"], c)
        ar = groups * all_reduce_time(FP32_BYTES * p_local / shard / groups, rep, links["dp_replicate"], c)
        each = req.impl.fsdp_sync_each_micro_batch and lay.pp == 1
        n_rs = n_micro if each else 1
        out = _DataParallel(time=gathers * ag + n_rs * rs + ar, exposed_once=(ag + rs) / groups)
        if lay.pp > 1:
            out.last = out.time
        else:
            out.forward, out.backward, out.last = ag, ag + (rs if each else 0.0), ar + (0.0 if each else rs)
        if shard > 1:
            out.bytes_shard = (gathers * compute_bytes + n_rs * FP32_BYTES) * p_local * (shard - 1) / shard
        if rep > 1:
            out.bytes_replicate = 2 * (rep - 1) / rep * FP32_BYTES * p_local / shard
        return out
    if lay.ddp:
        t = all_reduce_time(FP32_BYTES * p_local, rep, links["dp_replicate"], c)
        return _DataParallel(time=t, exposed_once=t / max(1, args.n_layers // lay.pp), last=t,
                             bytes_replicate=2 * (rep - 1) / rep * FP32_BYTES * p_local)
    return _DataParallel()


def predict(req: Request, lay: Layout, cal: Calibration | None = None) -> Prediction:
    """Memory per device and step time of `lay` for `req` (see the module docstring)."""
    cal = cal or Calibration(synchronous=req.cluster.device.kind == "cpu")
    args, cl, tp, pp = req.args, req.cluster, lay.tp, lay.pp
    n_micro = req.micro_batches(lay)
    links = _links(req, lay)
    worst = device_memory(req, lay)
    rates = _Rates.of(req)

    stage_compute, stage_tp, tp_bytes_stage = _stage_times(req, lay, cal, rates, links["tp"])
    stage_time = [c + t for c, t in zip(stage_compute, stage_tp)]
    slowest = max(range(pp), key=lambda i: stage_time[i])
    act_full = lay.micro_batch_size * req.seq_len * args.dim * req.act_bytes
    c = cal.kernel_constants()
    p2p = p2p_time(act_full / tp, links["pp"], c) if pp > 1 else 0.0
    slot = max(stage_time) + 2 * p2p
    pipeline_time = (n_micro + pp - 1) * slot
    bubble = (pp - 1) * max(stage_time)  # the sends of those slots are in pipeline_p2p

    p_local = max(stage_params(args, pp, st) for st in range(pp)) / tp
    dp = _data_parallel(req, lay, links, p_local, c)
    if cal.synchronous:
        dp_exposed = dp.time  # no device streams: the CPU waits for each collective
    else:  # under pp only the last micro-batch's slot overlaps
        forward_share = 0.25 if lay.recompute == "full" else 1 / 3  # forward, (recompute,) backward x2
        dp_exposed = dp.exposed(n_micro if pp == 1 else 1, max(stage_time), forward_share, c)

    p_opt = p_local / (lay.dp_shard if lay.fsdp else 1) / (lay.dp_replicate if req.impl.optimizer_sharded else 1)
    opt_bytes = req.impl.optimizer_bytes_per_param if cal.optimizer_bytes_per_param is None \
        else cal.optimizer_bytes_per_param
    optimizer_time = opt_bytes * p_opt / rates.memory_bandwidth
    step_overhead = cal.step_overhead(tp > 1, lay.fsdp) / rates.share
    step = pipeline_time + dp_exposed + optimizer_time + step_overhead

    tokens = req.global_batch * req.seq_len
    model_flops = flops_per_token(args, req.seq_len) * tokens
    peak = cl.device.peak_flops.get(rates.dtype, rates.flops)
    mfu = model_flops / (step * lay.world * peak)

    comm = {"intra": 0.0, "inter": 0.0}
    comm[_link_class(cl, links["tp"])] += max(tp_bytes_stage) * n_micro
    if pp > 1:
        comm[_link_class(cl, links["pp"])] += 2 * n_micro * act_full / tp
    comm[_link_class(cl, links["dp_shard"])] += dp.bytes_shard
    comm[_link_class(cl, links["dp_replicate"])] += dp.bytes_replicate
    comm["total"] = comm["intra"] + comm["inter"]
    return Prediction(
        step_time_s=step,
        memory_per_device_bytes=worst["total"],
        tokens_per_s=tokens / step,
        mfu=mfu,
        comm_bytes_per_step=comm,
        time={"compute": n_micro * stage_compute[slowest], "tensor_parallel": n_micro * stage_tp[slowest],
              "pipeline_bubble": bubble, "pipeline_p2p": 2 * p2p * (n_micro + pp - 1),
              "data_parallel_exposed": dp_exposed, "data_parallel_total": dp.time, "optimizer": optimizer_time,
              "step_overhead": step_overhead},
        memory={k: worst[k] for k in ("params", "gradients", "optimizer", "weight_copies", "activations")},
    )
