"""`steward bench planner`: run real layouts here (CPU, several gloo processes) and print the
planner's predicted step time and memory per device against the measured ones, with the error of each.

In the same invocation it first calibrates this machine (matmul rate, memory bandwidth, per-layer
overhead, gloo all-reduce, and the kernel figures: GEMM rate by shape, attention, element-wise
bandwidth) into a temporary file, then alternates, `--rounds` times, a few short training runs of
calibration shapes (`hostfit.SHAPES`: `debug` and `tiny` in one process, `debug` under tensor parallel and
FSDP2 in two; none of them a layout it predicts) with the layouts, so both see the same load. It fits
this host's trainer constants on the calibration runs alone (`hostfit`: the GEMM fraction the trainer
reaches, per-layer and per-step overheads, the optimizer's bytes per parameter, the per-step overheads
of tensor parallel and FSDP2),
reports their leave-one-out error (each run predicted by the constants fitted on the others), and
predicts the layouts with them: nothing is fitted to the layouts' steps, so every layout error it prints
is out of sample. It prints the prediction with the kernel figures only (the model before the fit) and
with the rates only (before the kernel figures) too. Memory is measured as the peak of live tensor bytes
(`LiveTensorBytes`): what the planner models, without the Python runtime and allocator slack that the
process's RSS would add. Memory is tracked over the first two steps, step time is the median of the
later (untracked) steps, pooled over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import uuid
import weakref
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from steward.bench import register
from steward.io import atomic_write_json


class LiveTensorBytes(TorchDispatchMode):
    """Tracks the bytes of every tensor storage alive, from the ops that create them to the moment
    their last reference goes, and the peak. Tensor subclasses (DTensor) count their local tensors.
    Storages resized in place (FSDP2 frees and re-allocates unsharded parameters with
    `UntypedStorage.resize_`) are followed while the mode is active."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0
        self._resize = None

    def add(self, t: torch.Tensor) -> None:
        if hasattr(t, "__tensor_flatten__"):  # DTensor and other wrappers: count what they hold
            names, _ = t.__tensor_flatten__()
            for name in names:
                inner = getattr(t, name)
                if isinstance(inner, torch.Tensor):
                    self.add(inner)
            return
        if t.device.type == "meta":
            return
        storage = t.untyped_storage()
        key = storage._cdata  # the storage itself: stable while it lives, unlike its data pointer
        if key in self.live:
            return
        self._set(key, storage.nbytes())
        weakref.finalize(storage, self._free, key)

    def _set(self, key: int, nbytes: int) -> None:
        self.current += nbytes - self.live.get(key, 0)
        self.live[key] = nbytes
        self.peak = max(self.peak, self.current)

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def add_module(self, module: torch.nn.Module) -> None:
        for t in [*module.parameters(), *module.buffers()]:
            self.add(t)

    def __enter__(self):
        original = torch.UntypedStorage.resize_
        tracker = self

        def resize_(storage, size):
            out = original(storage, size)
            if storage._cdata in tracker.live:
                tracker._set(storage._cdata, storage.nbytes())
            return out

        self._resize = original
        torch.UntypedStorage.resize_ = resize_
        return super().__enter__()

    def __exit__(self, *exc):
        if self._resize is not None:
            torch.UntypedStorage.resize_ = self._resize
            self._resize = None
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.add(t)
        return out


class _StepTimes:
    """A trainer callback keeping each step's time, and ending memory tracking after `track_steps`
    steps: the tracker's per-op Python work would otherwise slow the steps it times."""

    def __init__(self, tracker: LiveTensorBytes, track_steps: int) -> None:
        self.times: list[float] = []
        self.tracker = tracker
        self.track_steps = track_steps
        self.tracking = False

    def __getattr__(self, name):  # every other hook: nothing to do
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_step_end(self, trainer, step, metrics) -> None:
        self.times.append(metrics["step_time_s"])
        if self.tracking and step >= self.track_steps:
            self.tracker.__exit__(None, None, None)
            self.tracking = False


TRACK_STEPS = 2
"""Steps measured for memory: the second step is the first with optimizer states, so it reaches the peak."""


def measured_train(cfg) -> dict[str, Any]:
    """Train `cfg` in this process (one rank of a job, or alone): live tensor bytes over the first
    TRACK_STEPS steps (parameters and buffers included), and each step's time."""
    import torch.distributed as dist

    from steward.train.trainer import Trainer

    tracker = LiveTensorBytes()
    times = _StepTimes(tracker, TRACK_STEPS)
    trainer = Trainer(cfg, callbacks=[times])
    trainer.setup()
    tracker.add_module(trainer.model)
    tracker.__enter__()
    times.tracking = True
    try:
        summary = trainer.train()
    finally:
        if times.tracking:
            tracker.__exit__(None, None, None)
    peaks = [tracker.peak]
    if dist.is_initialized():
        peaks = [0] * dist.get_world_size()
        dist.all_gather_object(peaks, tracker.peak)
    return {"summary": summary, "peak_bytes": peaks, "step_times": times.times[TRACK_STEPS:],
            "plan": trainer.plan}


def _as_dict(result: dict[str, Any]) -> dict[str, Any]:
    result["plan"] = result["plan"].to_dict() if result["plan"] is not None else None
    return result


def _worker(runs: list[list[str]]) -> list[dict[str, Any]] | None:
    """Every rank trains each config in turn (one launch, one process group, a mesh per run)."""
    from steward.config import load_config

    results = [_as_dict(measured_train(load_config(None, overrides))) for overrides in runs]
    return results if os.environ.get("RANK", "0") == "0" else None


def measure_many(runs: list[list[str]], nproc: int) -> list[dict[str, Any]]:
    """Run the trainer on each config of `runs` in `nproc` local processes (gloo), measured; rank 0's
    results. One launch for all: starting processes costs more than training small models."""
    if nproc == 1:
        from steward.config import load_config

        return [_as_dict(measured_train(load_config(None, overrides))) for overrides in runs]
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    lc = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"steward-bench-{uuid.uuid4().hex[:8]}",
                      rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.2,
                      start_method="spawn")
    return elastic_launch(lc, _worker)(runs)[0]


def measure(overrides: list[str], nproc: int) -> dict[str, Any]:
    return measure_many([overrides], nproc)[0]


def request_for(overrides: list[str], nproc: int):
    """The planning request and the layout the trainer's flags `overrides` resolve to on `nproc` local processes."""
    from steward.config import load_config
    from steward.parallel.mesh import ParallelDims
    from steward.planning.cost import Layout
    from steward.planning.layout import request_from_config

    cfg = load_config(None, overrides)
    dims = ParallelDims.from_config(cfg, nproc, nproc)
    req = request_from_config(cfg, nproc, nproc)
    local = cfg.train.batch_size // dims.dp
    recompute = {"keep": "none"}.get(cfg.memory.policy, cfg.memory.policy)
    return req, Layout(dims.tp, dims.pp, dims.dp_replicate, dims.dp_shard, local // dims.grad_accum, recompute)


FIGURES = ("fitted", "kernels", "rates")
"""What a CPU prediction uses: 'fitted' the calibration with its trainer fit (`hostfit`), 'kernels' the
isolated kernel figures only (the model before the fit), 'rates' the calibrated large-matmul rate for
every GEMM and attention and a copy's bandwidth for element-wise kernels (the model before the figures)."""


def calibration_of(cluster, figures: str = "fitted"):
    """The cost model's calibration for `cluster` with the host figures `figures` (FIGURES)."""
    import dataclasses

    from steward.planning.cost import calibration_for
    from steward.planning.kernels import NEUTRAL

    if figures != "fitted":
        cluster = dataclasses.replace(cluster, device=dataclasses.replace(cluster.device, trainer_fit={}))
    cal = calibration_for(cluster)
    return dataclasses.replace(cal, constants=NEUTRAL) if figures == "rates" else cal


def predicted(overrides: list[str], nproc: int, figures: str = "fitted"):
    """The planner's prediction for the layout `overrides` resolve to on `nproc` local processes, with
    this host's figures `figures` (FIGURES)."""
    from steward.planning.cost import predict

    req, lay = request_for(overrides, nproc)
    return lay, predict(req, lay, calibration_of(req.cluster, figures))


LAYOUTS = {
    "single": (1, []),
    "fsdp": (2, ["--parallel.dp_shard", "2"]),
    "ddp": (2, ["--parallel.dp_replicate", "2"]),
    "tp": (2, ["--parallel.tp", "2"]),
    "pp": (2, ["--parallel.pp", "2"]),
    "fsdp+tp": (4, ["--parallel.dp_shard", "2", "--parallel.tp", "2"]),
}


@register("planner", "planner's predicted vs measured step time and memory for real layouts here (CPU, gloo)")
def bench_planner(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="steward bench planner")
    p.add_argument("--flavor", default="tiny")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--layouts", default="single,fsdp,ddp,tp,pp,fsdp+tp",
                   help=f"comma-separated, from {', '.join(LAYOUTS)}")
    p.add_argument("--save", action="store_true",
                   help="keep the calibration and its trainer fit as this host's (what `steward plan` reads)")
    p.add_argument("--rounds", type=int, default=2,
                   help="alternate the calibration runs and the layouts this many times, so both see the same load")
    args, extra = p.parse_known_args(argv)
    names = [n for n in args.layouts.split(",") if n]
    unknown = [n for n in names if n not in LAYOUTS]
    if unknown or args.rounds < 1:
        from steward.errors import UserError

        raise UserError(f"--layouts: unknown {', '.join(unknown)}; choose from {', '.join(LAYOUTS)}" if unknown
                        else f"--rounds: {args.rounds}; give at least 1")
    from steward.planning.calibrate import calibrate
    from steward.planning.hostfit import SHAPES
    from steward.planning.topology import calibration_path

    keep = calibration_path()
    loads: dict[str, Any] = {"before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        cal_path = Path(tmp) / "calibration.json"
        old = os.environ.get("STEWARD_CALIBRATION")
        os.environ["STEWARD_CALIBRATION"] = str(cal_path)  # workers inherit it
        try:
            cal = calibrate(nproc=2, path=cal_path, quick=True)
            shape_flags, shape_times, measured, loads["rounds"] = _measure_rounds(args, extra, names, Path(tmp))
            fit = _fit_host(cal_path, [s.name for s in SHAPES], shape_flags, shape_times)
            rows = []
            for name, (nproc, overrides) in _configs(names, args, extra, Path(tmp)).items():
                layout, pred = predicted(overrides, nproc)
                others = {f: predicted(overrides, nproc, f)[1].step_time_s for f in ("kernels", "rates")}
                rows.append(_row(name, nproc, layout, pred, measured[name], others))
            if args.save:
                atomic_write_json(keep, json.loads(cal_path.read_text()))
        finally:
            if old is None:
                os.environ.pop("STEWARD_CALIBRATION", None)
            else:
                os.environ["STEWARD_CALIBRATION"] = old
    result = _result(args, rows, cal, fit, loads)
    if args.save:
        result["saved_to"] = str(keep)
    return result


def _measure_rounds(args: argparse.Namespace, extra: list[str], names: list[str],
                    tmp: Path) -> tuple[list[tuple[int, list[str]]], list[list[float]], dict[str, dict[str, Any]], list[float]]:
    """The calibration runs (`hostfit.SHAPES`) and the layouts, alternated `args.rounds` times so that
    both see the same load (one launch per process count and round): each run's step times pooled over
    the rounds (memory from the first). Returns the calibration runs' (processes, flags) and step times,
    the layouts' measurements and the load average after each round."""
    from steward.planning.hostfit import SHAPES

    shape_times: list[list[float]] = [[] for _ in SHAPES]
    measured: dict[str, dict[str, Any]] = {}
    loads = []
    for r in range(args.rounds):
        out = tmp / f"round-{r}"
        shapes = {f"calibration {i}": (s.nproc, _flags(args, extra, out / f"calibration-{i}", s.flags()))
                  for i, s in enumerate(SHAPES)}
        got = _measure_by_process_count(shapes | _configs(names, args, extra, out))
        for times, key in zip(shape_times, shapes):
            times.extend(got[key]["step_times"])
        for name in names:
            measured.setdefault(name, dict(got[name], step_times=[]))["step_times"].extend(got[name]["step_times"])
        loads.append(os.getloadavg()[0])
    return list(shapes.values()), shape_times, measured, loads


def _flags(args: argparse.Namespace, extra: list[str], out: Path, model: list[str]) -> list[str]:
    """The trainer's flags of one measured run: `model` (flavor, batch, sequence length) and the bench's own."""
    return [*model, "--train.steps", str(args.steps), "--train.val_every", "0", "--train.val_batches", "1",
            "--train.device", "cpu", "--train.threads", "1", "--checkpoint.enabled", "false",
            "--governance.enabled", "false", "--data.max_docs", "400", "--job.out", str(out), *extra]


def _configs(names: list[str], args: argparse.Namespace, extra: list[str],
             tmp: Path) -> dict[str, tuple[int, list[str]]]:
    """Layout name -> (processes, the trainer's flags) for each layout of the benchmark."""
    configs = {}
    for name in names:
        nproc, flags = LAYOUTS[name]
        model = ["--model.flavor", args.flavor, "--train.batch_size", str(args.batch), "--train.seq_len",
                 str(args.seq_len)]
        configs[name] = (nproc, _flags(args, [*flags, *extra], tmp / name, model))
    return configs


def _fit_host(cal_path: Path, names: list[str], runs: list[tuple[int, list[str]]],
              times: list[list[float]]) -> dict[str, Any]:
    """Fit this host's trainer constants on the calibration runs ((processes, flags) each; `hostfit`), and
    store them in the calibration file the layouts' predictions then read."""
    from steward.planning.hostfit import host_fit

    cases = [request_for(flags, nproc) for nproc, flags in runs]
    base = calibration_of(cases[0][0].cluster, "kernels")
    fit = host_fit(names, cases, base, [statistics.median(t) for t in times])
    data = json.loads(cal_path.read_text())
    data["trainer_fit"] = fit
    atomic_write_json(cal_path, data)
    return fit
def _measure_by_process_count(configs: dict[str, tuple[int, list[str]]]) -> dict[str, dict[str, Any]]:
    """Every run of `configs` (name -> (processes, flags)) trained and measured: one launch per process count."""
    measured = {}
    for nproc in sorted({n for n, _ in configs.values()}):
        batch = [name for name, (n, _) in configs.items() if n == nproc]
        for name, got in zip(batch, measure_many([configs[name][1] for name in batch], nproc)):
            measured[name] = got
    return measured


def _row(name: str, nproc: int, layout, pred, got: dict[str, Any], others: dict[str, float]) -> dict[str, Any]:
    """One layout: predicted (with the trainer fit; with the kernel figures only; with the rates only)
    against measured step time (median) and memory (the largest rank's peak)."""
    step = statistics.median(got["step_times"])
    mem = max(got["peak_bytes"])
    row = {
        "layout": name,
        "processes": nproc,
        "plan": str(layout),
        "predicted_step_time_s": pred.step_time_s,
        "measured_step_time_s": step,
        "step_time_error": pred.step_time_s / step - 1,
    }
    for figures, seconds in others.items():
        row[f"{figures}_only_step_time_s"] = seconds
        row[f"{figures}_only_step_time_error"] = seconds / step - 1
    return row | {
        "predicted_memory_bytes": pred.memory_per_device_bytes,
        "measured_memory_bytes": mem,
        "memory_error": pred.memory_per_device_bytes / mem - 1,
    }


def _result(args: argparse.Namespace, rows: list[dict[str, Any]], cal: dict[str, Any], fit: dict[str, Any],
            loads: dict[str, float]) -> dict[str, Any]:
    loads["after"] = os.getloadavg()[0]
    result: dict[str, Any] = {
        "benchmark": "planner",
        "model": args.flavor,
        "global_batch": args.batch,
        "seq_len": args.seq_len,
        # other work on the machine slows the measured steps, not the prediction: judge the time errors by it
        "rounds": args.rounds,
        "load_average_before": loads["before"],
        "load_average_after_each_round": loads["rounds"],
        "load_average_after": loads["after"],
    }
    for r in fit["runs"]:
        result[f"calibration run {r['shape']}"] = (
            f"measured {r['measured_step_time_s']:.4f} s, fitted {r['fitted_step_time_s']:.4f} s "
            f"({r['fitted_error']:+.1%}), left out {r['leave_one_out_step_time_s']:.4f} s "
            f"({r['leave_one_out_error']:+.1%})")
    for r in rows:
        result[f"{r['layout']} step time"] = (
            f"predicted {r['predicted_step_time_s']:.4f} s, measured {r['measured_step_time_s']:.4f} s, "
            f"error {r['step_time_error']:+.1%} (kernel figures only: {r['kernels_only_step_time_s']:.4f} s, "
            f"{r['kernels_only_step_time_error']:+.1%}; rates only: {r['rates_only_step_time_s']:.4f} s, "
            f"{r['rates_only_step_time_error']:+.1%})")
        result[f"{r['layout']} memory"] = (
            f"predicted {r['predicted_memory_bytes'] / 1e6:.2f} MB, measured {r['measured_memory_bytes'] / 1e6:.2f} MB, "
            f"error {r['memory_error']:+.1%}")
    for key in ("", "kernels_only_", "rates_only_"):
        errors = [r[f"{key}step_time_error"] for r in rows]
        result[f"mean_abs_{key}step_time_error"] = statistics.mean(abs(e) for e in errors)
        result[f"mean_signed_{key}step_time_error"] = statistics.mean(errors)
    result.update(
        leave_one_out_mean_abs_step_time_error=fit["leave_one_out_mean_abs_error"],
        leave_one_out_mean_signed_step_time_error=fit["leave_one_out_mean_signed_error"],
        trainer_fit=fit["constants"],
        mean_abs_memory_error=statistics.mean(abs(r["memory_error"]) for r in rows),
        max_abs_memory_error=max(abs(r["memory_error"]) for r in rows),
        calibration={k: cal[k] for k in ("matmul_flops", "memory_bandwidth", "layer_overhead_s", "layer_overhead_tp_s",
                                         "layer_overhead_fsdp_s", "kernels") if k in cal}
        | {"collective_bandwidth": cal.get("collective", {}).get("bandwidth"),
           "collective_latency": cal.get("collective", {}).get("latency")},
        calibration_runs=fit["runs"],
        rows=rows,
    )
    return result
