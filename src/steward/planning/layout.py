"""The layout planner: enumerate layouts (tp, pp, dp_replicate, dp_shard, micro-batch, recompute) for a
model, batch and cluster, ask the cost model (`cost.predict`) for each, and pick the fastest that fits.
`steward plan` prints the choice; `steward train --parallel.auto true` runs it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from steward.errors import StewardError
from steward.models.gpt import flops_per_token
from steward.planning.cost import (
    Calibration,
    Implementation,
    Layout,
    Prediction,
    Request,
    calibration_for,
    predict,
)
from steward.planning.kernels import BAND, ErrorBand
from steward.planning.units import GB, GIB

RECOMPUTE = ("none", "selective", "full")
# memory.policy values that carry out each recompute choice
MEMORY_POLICY = {"none": "keep", "selective": "selective", "full": "full"}


class PlanError(StewardError):
    """No layout fits, or the request is malformed; the message names what is short and by how much."""


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


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def layouts(req: Request) -> Iterator[Layout]:
    """Every valid layout (`layout_problem` finds none) for the request's cluster, model and batch."""
    world = req.cluster.world_size
    for tp in divisors(world):
        for pp in divisors(world // tp):
            dp = world // (tp * pp)
            if req.global_batch % dp:
                continue
            for shard in divisors(dp):
                for mb in divisors(req.global_batch // dp):
                    for rc in RECOMPUTE:
                        lay = Layout(tp, pp, dp // shard, shard, mb, rc)
                        if layout_problem(req, lay) is None:
                            yield lay


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
            "request": request_dict(req),
        }


def request_dict(req: Request) -> dict[str, Any]:
    return {"model": req.name, "global_batch": req.global_batch, "seq_len": req.seq_len,
            "cluster": req.cluster.name, "nodes": req.cluster.nodes,
            "devices_per_node": req.cluster.devices_per_node, "memory_limit_bytes": req.memory_limit,
            "dtype": req.dtype}


def plan(req: Request, top: int = 5, cal: Calibration | None = None) -> PlanResult:
    """The fastest layout within the memory limit, and the next `top - 1`; PlanError when none fits."""
    if req.global_batch < 1 or req.seq_len < 1:
        raise PlanError("train.batch_size and train.seq_len must be positive")
    if req.seq_len > req.args.max_seq_len:
        raise PlanError(f"train.seq_len: {req.seq_len} exceeds the model's max_seq_len {req.args.max_seq_len}")
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
            f"train.batch_size: a global batch of {req.global_batch} cannot be split over any layout of "
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


# ---- one given layout (`steward plan --layout`, `steward bench costmodel`) ---------------------------

LAYOUT_KEYS = ("tp", "pp", "dp_replicate", "dp_shard", "micro_batch", "recompute")


def parse_layout(text: str) -> Layout:
    """'tp=8,pp=4,dp_replicate=1,dp_shard=16,micro_batch=1,recompute=full' (every key once; recompute
    none, selective or full). Whether it fits the request is `check_layout`'s."""
    values: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in LAYOUT_KEYS:
            raise PlanError(f"--layout: {part!r} is not KEY=VALUE with KEY one of {', '.join(LAYOUT_KEYS)}")
        if key in values:
            raise PlanError(f"--layout: {key} is given twice")
        values[key] = value.strip()
    missing = [k for k in LAYOUT_KEYS if k not in values]
    if missing:
        raise PlanError(f"--layout: missing {', '.join(missing)} (give all of {', '.join(LAYOUT_KEYS)})")
    if values["recompute"] not in RECOMPUTE:
        raise PlanError(f"--layout: recompute={values['recompute']!r}; choose one of {', '.join(RECOMPUTE)}")
    sizes = {}
    for key in LAYOUT_KEYS[:-1]:
        try:
            sizes[key] = int(values[key])
        except ValueError:
            sizes[key] = 0
        if sizes[key] < 1:
            raise PlanError(f"--layout: {key}={values[key]!r} must be an integer >= 1")
    return Layout(sizes["tp"], sizes["pp"], sizes["dp_replicate"], sizes["dp_shard"], sizes["micro_batch"],
                  values["recompute"])


def layout_problem(req: Request, lay: Layout) -> str | None:
    """What does not hold for `lay` (None: it is valid): the degrees cover the cluster, tensor parallel
    fits a node and divides the heads and the sequence, pipeline stages have blocks, the batch splits
    into whole micro-batches, at least one per stage. The planner's search and `--layout` both ask this."""
    args, cl = req.args, req.cluster
    if lay.world != cl.world_size:
        return (f"tp x pp x dp_replicate x dp_shard = {lay.world}, but the cluster has {cl.world_size} devices "
                f"({cl.nodes} x {cl.devices_per_node}); change the degrees or --nodes")
    if not req.allow_tp_across_nodes and (lay.tp > cl.devices_per_node or cl.devices_per_node % lay.tp):
        return f"tp={lay.tp} does not fit the {cl.devices_per_node} devices of a node; lower it, or pass --tp-across-nodes"
    for what, n in (("n_heads", args.n_heads), ("n_kv_heads", args.kv_heads), ("train.seq_len", req.seq_len)):
        if n % lay.tp:
            return f"tp={lay.tp} does not divide {what} {n}"
    if lay.pp > args.n_layers:
        return f"pp={lay.pp} exceeds the model's {args.n_layers} layers"
    if req.global_batch % lay.dp or (req.global_batch // lay.dp) % lay.micro_batch_size:
        return (f"train.batch_size {req.global_batch} does not split into data-parallel degree {lay.dp} x whole "
                f"micro-batches of {lay.micro_batch_size}")
    impl = req.impl
    if impl.optimizer_sharded and not impl.shards_master_weights and (lay.tp, lay.pp, lay.dp_shard) != (1, 1, 1):
        # Steward's ZeRO-1/2 (torch's ZeroRedundancyOptimizer over the model's own weights) needs plain replicas
        return "parallel.shard_optimizer runs over plain DDP replicas only (tp, pp and dp_shard 1)"
    if req.micro_batches(lay) < lay.pp:
        return (f"{req.micro_batches(lay)} micro-batch(es) per step feed fewer than pp={lay.pp} stages; raise "
                "train.batch_size or lower micro_batch")
    return None


def check_layout(req: Request, lay: Layout) -> None:
    """PlanError naming what does not hold for `lay` (see `layout_problem`)."""
    problem = layout_problem(req, lay)
    if problem is not None:
        raise PlanError(f"--layout: {problem}")


def evaluate(req: Request, lay: Layout, cal: Calibration | None = None) -> Plan:
    """The cost model's prediction for exactly `lay` (checked first), and whether it fits the limit."""
    if req.seq_len > req.args.max_seq_len:
        raise PlanError(f"train.seq_len: {req.seq_len} exceeds the model's max_seq_len {req.args.max_seq_len}")
    check_layout(req, lay)
    pred = predict(req, lay, cal or calibration_for(req.cluster))
    return Plan(lay, pred, fits=pred.memory_per_device_bytes <= req.memory_limit)


def model_tflops_per_device(req: Request, pred: Prediction, world: int) -> float:
    """Model FLOP/s per device in TFLOP/s: MODEL_FLOPS over the predicted step time."""
    return flops_per_token(req.args, req.seq_len) * req.global_batch * req.seq_len / pred.step_time_s / world / 1e12


MODEL_FLOPS = "model FLOPs = 6 N + 12 L h s per token (N non-embedding parameters; PaLM appendix B; no recompute)"


def band_for(req: Request) -> ErrorBand | None:
    """The measured error band of the request's predictions: GPUs (the fitted constants); None on a CPU,
    whose figures come from this host's calibration instead."""
    return None if req.cluster.device.kind == "cpu" else BAND


def band_text(req: Request, step_time: float) -> str:
    """', true step time a-b s' within the measured band, or '' where none is measured."""
    b = band_for(req)
    if b is None:
        return ""
    lo, hi = b.time_range(step_time)
    return f" (band {lo:.4g}-{hi:.4g} s)"


def format_evaluation(req: Request, p: Plan) -> list[str]:
    """Lines for `steward plan --layout`."""
    pr = p.predicted
    return [
        _request_line(req),
        "",
        f"layout {p.layout}",
        f"      step {pr.step_time_s:.4g} s{band_text(req, pr.step_time_s)}, {pr.tokens_per_s:.4g} tokens/s "
        f"({pr.tokens_per_s / p.layout.world:.4g} per device), "
        f"{model_tflops_per_device(req, pr, p.layout.world):.4g} TFLOP/s per device, MFU {pr.mfu:.1%}",
        f"      ({MODEL_FLOPS})",
        f"      {_band_line(req)}",
        f"      memory {pr.memory_per_device_bytes / GIB:.2f} GiB/device: "
        + ("fits" if p.fits else "DOES NOT FIT") + f" the limit of {req.memory_limit / GIB:.1f} GiB",
        "      time:   " + ", ".join(f"{k} {v:.3g} s" for k, v in pr.time.items()),
        "      memory: " + ", ".join(f"{k} {v / GIB:.3g} GiB" for k, v in pr.memory.items()),
    ]


def evaluation_dict(req: Request, p: Plan) -> dict[str, Any]:
    """`steward plan --layout --json`: the plan, its prediction, fits, and the TFLOP/s with its formula."""
    b = band_for(req)
    band = None if b is None else {"lo": b.lo, "hi": b.hi, "coverage": b.coverage, "runs": b.runs,
                                   "step_time_range_s": list(b.time_range(p.predicted.step_time_s))}
    return {**p.to_dict(), "tflops_per_device": model_tflops_per_device(req, p.predicted, p.layout.world),
            "flop_formula": MODEL_FLOPS, "request": request_dict(req), "error_band": band}


# ---- the trainer's parallel.auto --------------------------------------------------------------------


def request_from_config(cfg, world_size: int, local_world_size: int) -> Request:
    """The planning request a training config makes on the running job's cluster."""
    import torch

    from steward.models.gpt import build_model_args
    from steward.planning.topology import discover_cluster, load_cluster

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
        limit = cfg.memory.budget_gb * GB
    else:
        limit = cluster.device.memory_bytes * cfg.memory.budget_fraction
    return Request(args=args, global_batch=cfg.train.batch_size, seq_len=cfg.train.seq_len, cluster=cluster,
                   memory_limit=limit, dtype="bf16" if bf16 else "fp32",
                   allow_tp_across_nodes=cfg.parallel.tp_across_nodes, name=cfg.model.flavor,
                   impl=Implementation(optimizer_sharded=cfg.parallel.shard_optimizer, shards_master_weights=False,
                                       gradients_sharded=cfg.parallel.shard_gradients))


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
    out = [
        _request_line(result.request),
        f"{result.considered} layouts considered, {result.fitting} fit",
        "",
    ]
    req, best_t = result.request, result.best.predicted.step_time_s
    b = band_for(req)
    out[-1:-1] = [_band_line(req)]
    for i, p in enumerate([result.best, *result.alternatives]):
        pr = p.predicted
        tie = ""
        if i and b is not None:
            tie = ("  (slower than best beyond the band)" if b.faster(best_t, pr.step_time_s)
                   else "  (within the band of best: not shown slower)")
        out.append(f"{'best' if i == 0 else f'#{i + 1}':<5} {p.layout}{tie}")
        out.append(f"      step {pr.step_time_s:.4g} s{band_text(req, pr.step_time_s)}, {pr.tokens_per_s:.4g} "
                   f"tokens/s, MFU {pr.mfu:.1%}, "
                   f"memory {pr.memory_per_device_bytes / GIB:.2f} GiB/device, "
                   f"comm {pr.comm_bytes_per_step['intra'] / GB:.3g} GB intra + "
                   f"{pr.comm_bytes_per_step['inter'] / GB:.3g} GB inter per device")
        if i == 0:
            out.append("      time:   " + ", ".join(f"{k} {v:.3g} s" for k, v in pr.time.items()))
            out.append("      memory: " + ", ".join(f"{k} {v / GIB:.3g} GiB" for k, v in pr.memory.items()))
    return out


def _band_line(req: Request) -> str:
    b = band_for(req)
    return b.describe() if b else "no measured error band on a CPU (its figures come from this host's calibration)"


def _request_line(req: Request) -> str:
    return (f"model {req.name}: {req.args.n_layers} layers, dim {req.args.dim}; global batch {req.global_batch} x "
            f"{req.seq_len} tokens; {req.cluster.name}: {req.cluster.nodes} x {req.cluster.devices_per_node} "
            f"{req.cluster.device.name}; limit {req.memory_limit / GIB:.1f} GiB per device ({req.dtype})")
