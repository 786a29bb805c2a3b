"""`steward bench comm`: gradient compression and hierarchical all-reduce against uncompressed.

4 processes as 2 emulated nodes of 2 (comm.ranks_per_node) train the same model, data and seed
once per compressor, flat and hierarchical, through the real trainer; each run reports the bytes
sent per step (intra-/inter-node, counted by steward.comm), the median step time and the loss, and
the ratios against uncompressed flat DDP of the same invocation. The compressor's figures come from
the steps after comm.warmup_steps.

Then PyTorch's own `powerSGD_hook` and Steward's `powersgd` at the same rank train the same DDP
loop (same model, batches, optimizer, seed, warm-up): bytes handed to all-reduce per step and loss.

With `--emulate-link RATE`, the two nodes run in Linux network namespaces that the benchmark
creates and removes, joined by a veth pair that `tc tbf` rate-limits in both directions; each
node's processes talk to the other node over that pair only (gloo is bound to the veth), and the
bytes crossing it are read from the veth's counters, next to the counted ones. When the namespaces
cannot be made (not root, no `ip`/`tc`, no CAP_NET_ADMIN), it says why and runs on loopback.

The workers are started by torchrun (`python -m torch.distributed.run`), once for all runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from steward.bench import register
from steward.errors import StewardError
from steward.io import atomic_write_json, read_jsonl


class BenchError(StewardError):
    """Bad benchmark arguments, or the benchmark's workers failed."""


ALL = ["none", "fp16", "bf16", "int8", "topk", "powersgd"]


# ---- link emulation -----------------------------------------------------------------------------

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:bit|bps)?(?:/s)?\s*$", re.IGNORECASE)


def parse_rate(text: str, flag: str = "--emulate-link") -> int:
    """'100mbit', '100Mbit/s', '1gbit', '500kbit' -> bits per second (decimal prefixes, as tc); a bad
    rate is a BenchError naming `flag`."""
    m = _RATE.match(text)
    if not m:
        raise BenchError(f"{flag}: cannot read {text!r} as a rate; write e.g. 100mbit")
    value = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]
    if value < 1e5:
        raise BenchError(f"{flag}: {text!r} is below 100kbit; the run would take hours")
    return int(value)


class EmulationUnavailable(Exception):
    """The namespaces or the rate limit could not be set up; the message says why."""


class LinkEmulation:
    """Two network namespaces (one per emulated node) joined by a veth pair rate-limited with tc tbf
    on both ends; created on enter, removed on exit (removing a namespace removes its veth end)."""

    ADDRS = ("10.213.0.1", "10.213.0.2")

    def __init__(self, bits_per_s: int):
        self.bits_per_s = bits_per_s
        tag = os.getpid()
        self.ns = (f"stw{tag}n0", f"stw{tag}n1")
        self.veth = (f"stw{tag}v0", f"stw{tag}v1")  # interface names: at most 15 characters
        self.created: list[str] = []

    def _ip(self, *args: str, ns: str | None = None) -> None:
        cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode:
            raise EmulationUnavailable(f"`{' '.join(cmd)}` failed: {(p.stderr or p.stdout).strip()}")

    def __enter__(self) -> LinkEmulation:
        missing = [t for t in ("ip", "tc") if shutil.which(t) is None]
        if missing:
            raise EmulationUnavailable(f"{' and '.join(missing)} not found (install iproute2)")
        if os.geteuid() != 0:
            raise EmulationUnavailable("creating network namespaces needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")
        try:
            for ns in self.ns:
                self._ip("ip", "netns", "add", ns)
                self.created.append(ns)
            self._ip("ip", "link", "add", self.veth[0], "type", "veth", "peer", "name", self.veth[1])
            # tbf needs a bucket of at least one (GSO) packet, up to 64 KiB on a veth; 10 ms of the
            # rate beyond that. latency bounds the queue, not the delay of an idle link.
            burst = max(self.bits_per_s // 8 // 100, 128 * 1024)
            for ns, veth, addr in zip(self.ns, self.veth, self.ADDRS):
                self._ip("ip", "link", "set", veth, "netns", ns)
                self._ip("ip", "addr", "add", f"{addr}/24", "dev", veth, ns=ns)
                self._ip("ip", "link", "set", veth, "up", ns=ns)
                self._ip("ip", "link", "set", "lo", "up", ns=ns)
                self._ip("tc", "qdisc", "add", "dev", veth, "root", "tbf", "rate", f"{self.bits_per_s}bit",
                         "burst", str(burst), "latency", "100ms", ns=ns)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.created.clear()


def _veth_bytes(veth: str) -> int | None:
    """Bytes this namespace's veth end has sent (the caller runs inside that namespace)."""
    try:
        return int(Path(f"/sys/class/net/{veth}/statistics/tx_bytes").read_text())
    except OSError:
        return None


# ---- the worker (one torchrun job runs every configuration) --------------------------------------

def _median_iqr(xs: list[float]) -> tuple[float, float, float]:
    if not xs:
        return math.nan, math.nan, math.nan
    if len(xs) < 4:
        m = statistics.median(xs)
        return m, min(xs), max(xs)
    q = statistics.quantiles(xs, n=4)
    return statistics.median(xs), q[0], q[2]


def _trainer_run(spec: dict, run: dict) -> dict[str, Any]:
    import torch.distributed as dist

    from steward.config import load_config
    from steward.train.callbacks import Callback
    from steward.train.trainer import Trainer

    veth = os.environ.get("STEWARD_BENCH_VETH")
    warm = spec["warmup_steps"]

    class LinkBytes(Callback):
        """The veth's sent bytes over the compressed steps, read by each node's first process."""

        def __init__(self) -> None:
            self.at: dict[int, int | None] = {}

        def on_step_end(self, trainer, step, metrics) -> None:
            if step in (warm, spec["steps"]) and veth and int(os.environ.get("LOCAL_RANK", "0")) == 0:
                self.at[step] = _veth_bytes(veth)

    probe = LinkBytes()
    run_dir = Path(spec["out"]) / run["name"]
    cfg = load_config(None, [*spec["flags"], *run["flags"], "--job.out", str(run_dir), "--job.overwrite", "true"])
    summary = Trainer(cfg, callbacks=[probe]).run()
    sent = None
    if veth:
        everyone: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, probe.at)
        ends = [a for a in everyone if a]
        if ends and all(a.get(warm) is not None and a.get(spec["steps"]) is not None for a in ends):
            sent = sum(a[spec["steps"]] - a[warm] for a in ends)
    if dist.get_rank() != 0:
        return {}
    rows = [rec for _, rec in read_jsonl(run_dir / "metrics.jsonl")]
    steps = [r for r in rows if "loss" in r and r["step"] > warm]
    # the first compressed steps allocate state (error buffers, Q); time the steady state
    timed = [r["step_time_s"] for r in steps[2:]] or [r["step_time_s"] for r in steps]
    med, q1, q3 = _median_iqr(timed)
    last = [r["loss"] for r in rows if "loss" in r][-10:]
    n = max(1, len(steps))
    return {
        "compressor": run["compressor"],
        "hierarchical": run["hierarchical"],
        "inter_bytes_per_step": sum(r["comm_bytes_inter"] for r in steps) / n,
        "intra_bytes_per_step": sum(r["comm_bytes_intra"] for r in steps) / n,
        "inter_bytes_per_step_uncompressed": sum(r["comm_bytes_inter_uncompressed"] for r in steps) / n,
        "intra_bytes_per_step_uncompressed": sum(r["comm_bytes_intra_uncompressed"] for r in steps) / n,
        "measured_inter_bytes_per_step": sent / (spec["steps"] - warm) if sent is not None else None,
        "inter_bytes_total": summary["comm_bytes_inter_total"],
        "step_time_s": med,
        "step_time_q1_s": q1,
        "step_time_q3_s": q3,
        "steps_timed": len(timed),
        "val_loss": summary["final_val_loss"],
        "train_loss_last10": sum(last) / len(last),
        "run_dir": str(run_dir),
    }


def _reference(spec: dict, kind: str, seed: int) -> dict[str, Any]:
    """One DDP training loop with PyTorch's powerSGD_hook ('torch') or Steward's powersgd ('steward')."""
    import torch
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as torch_psgd
    from torch.distributed.device_mesh import init_device_mesh
    from torch.nn.parallel import DistributedDataParallel as DDP

    from steward.comm import GradSync, Topology
    from steward.config import load_config
    from steward.data import build_data, build_tokenizer
    from steward.models import build_model, build_model_args
    from steward.train.distributed import all_reduce_mean
    from steward.train.optim import build_optimizer, build_scheduler
    from steward.train.trainer import clip_grad_norm, lm_loss

    cfg = load_config(None, [*spec["flags"], "--comm.compressor", "powersgd", "--parallel.dp_replicate",
                             str(dist.get_world_size()), "--train.seed", str(seed)])
    rank, world = dist.get_rank(), dist.get_world_size()
    tok = build_tokenizer(cfg.data.tokenizer)
    data = build_data(cfg.data, cfg.train, tok, rank, world)
    torch.manual_seed(cfg.train.seed)
    model = build_model(build_model_args(cfg.model.flavor, vocab_size=tok.vocab_size,
                                         max_seq_len=cfg.train.seq_len), device="cpu")
    numel = sum(p.numel() for p in model.parameters())
    # one bucket for both: PyTorch's hook issues its later all-reduces from future callbacks, which
    # with gloo run concurrently for different buckets and mismatch collectives across ranks
    ddp = DDP(model, bucket_cap_mb=4 * numel / 2**20 + 1)
    # torch's PowerSGD cannot start before DDP's second iteration (its own check): both start at
    # the same step
    warm = max(2, cfg.comm.warmup_steps)
    cfg.comm.warmup_steps = warm
    if kind == "steward":
        mesh = init_device_mesh("cpu", (world, 1), mesh_dim_names=("dp_replicate", "dp_shard"))
        sync = GradSync(cfg.comm, "ddp", mesh, Topology(world, spec["ranks_per_node"]), seed=cfg.train.seed)
        sync.attach_ddp(ddp)
    else:
        state = torch_psgd.PowerSGDState(process_group=None, matrix_approximation_rank=cfg.comm.rank,
                                         start_powerSGD_iter=warm, random_seed=cfg.train.seed)
        ddp.register_comm_hook(state, torch_psgd.powerSGD_hook)
    opt = build_optimizer(cfg.train, ddp)
    sched = build_scheduler(cfg.train, opt)
    losses, payload = [], []
    after_prev = 0
    for _ in range(cfg.train.steps):
        batch = data.train.next_batch()
        loss = lm_loss(ddp(batch[:, :-1]), batch[:, 1:])
        loss.backward()
        clip_grad_norm(ddp, cfg.train.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(all_reduce_mean(loss.detach())))
        if kind == "steward":
            payload.append(sum(r.payload_bytes for r in sync.ledger.records if not r.baseline))
            sync.end_step()
        else:
            after = state.total_numel_after_compression
            # before start_powerSGD_iter the hook runs a plain all-reduce and counts nothing
            payload.append(4 * (after - after_prev) if after > after_prev else 4 * numel)
            after_prev = after
    model.eval()
    with torch.no_grad():
        val = torch.stack([lm_loss(model(b[:, :-1]), b[:, 1:]) for b in data.val_batches(cfg.train.val_batches)])
    val_loss = float(all_reduce_mean(val.mean()))
    compressed = payload[max(2, warm):]
    return {
        "payload_bytes_per_step": sum(compressed) / max(1, len(compressed)),
        "val_loss": val_loss,
        "train_loss_last10": sum(losses[-10:]) / len(losses[-10:]),
    }


def worker(spec_path: str) -> None:
    import torch.distributed as dist

    spec = json.loads(Path(spec_path).read_text())
    dist.init_process_group("gloo")
    results: dict[str, Any] = {"runs": {}, "reference": {}}
    out = Path(spec["out"]) / "results.json"
    for run in spec["runs"]:
        results["runs"][run["name"]] = _trainer_run(spec, run)
        if dist.get_rank() == 0:  # after every run, so that a failure later keeps what was measured
            atomic_write_json(out, results)
    for seed in spec["reference_seeds"]:
        results["reference"][str(seed)] = {kind: _reference(spec, kind, seed) for kind in ("steward", "torch")}
    if dist.get_rank() == 0:
        atomic_write_json(out, results)
    dist.destroy_process_group()


# ---- the benchmark ------------------------------------------------------------------------------

def _launch(spec: dict, spec_path: Path, link: LinkEmulation | None, nproc: int, rpn: int) -> None:
    """torchrun for the whole job: on loopback, or one torchrun per namespace (node)."""
    base = [sys.executable, "-m", "torch.distributed.run"]
    tail = ["-m", "steward.bench.comm", "--worker", str(spec_path)]
    log = sys.stderr
    if link is None:
        cmd = [*base, "--standalone", "--nproc-per-node", str(nproc), *tail]
        p = subprocess.run(cmd, stdout=log, stderr=log)
        codes = [p.returncode]
    else:
        procs = []
        for node, (ns, veth) in enumerate(zip(link.ns, link.veth)):
            env = dict(os.environ, GLOO_SOCKET_IFNAME=veth, STEWARD_BENCH_VETH=veth)
            cmd = ["ip", "netns", "exec", ns, *base, "--nnodes", "2", "--node-rank", str(node),
                   "--nproc-per-node", str(rpn), "--master-addr", LinkEmulation.ADDRS[0], "--master-port", "29500",
                   *tail]
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=log))
        codes = [p.wait() for p in procs]
    if any(codes):
        raise BenchError(f"the benchmark's workers failed (exit codes {codes}); their output is above")


def _table(res: dict[str, Any]) -> str:
    lines = [f"{'run':<16} {'inter B/step':>13} {'intra B/step':>13} {'inter x less':>12} {'step s':>8} "
             f"{'speedup':>8} {'val loss':>9} {'loss ratio':>10}"]
    for name, r in res["runs"].items():
        lines.append(
            f"{name:<16} {r['inter_bytes_per_step']:>13.0f} {r['intra_bytes_per_step']:>13.0f} "
            f"{r['inter_bytes_reduction'] or math.inf:>12.2f} {r['step_time_s']:>8.3f} {r['step_time_speedup']:>8.2f} "
            f"{r['val_loss']:>9.4f} {r['val_loss_ratio']:>10.4f}"
        )
    return "\n".join(lines)


@register("comm", "gradient compression / hierarchical all-reduce vs uncompressed: bytes, step time, loss")
def bench_comm(argv: list[str]) -> dict[str, Any]:
    args, overrides, compressors, modes = _parse(argv)
    # the baseline of every ratio, uncompressed flat DDP, always runs first
    pairs = [("none", "flat")] + [(c, m) for c in compressors for m in modes if (c, m) != ("none", "flat")]
    flags = [
        "--model.flavor", args.flavor, "--train.steps", str(args.steps), "--train.batch_size", str(args.batch_size),
        "--train.seq_len", str(args.seq_len), "--train.val_every", "0", "--train.device", "cpu",
        "--checkpoint.enabled", "false", "--governance.enabled", "false", "--train.threads", "1",
        "--parallel.dp_replicate", str(args.nproc), "--comm.ranks_per_node", str(args.ranks_per_node),
        "--comm.rank", str(args.rank), "--comm.topk_fraction", str(args.topk_fraction),
        "--comm.warmup_steps", str(args.warmup_steps), *overrides,
    ]
    from steward.config import load_config
    from steward.train.checks import check_job

    # every flag is checked here, in one line, before any process starts
    cfg0 = load_config(None, flags)
    check_job(cfg0)
    if args.reference_seeds < 1:
        raise BenchError(f"--reference-seeds: must be >= 1, got {args.reference_seeds}")
    runs = [
        {"name": f"{c}-{m}", "compressor": c, "hierarchical": m == "hier",
         "flags": ["--comm.compressor", c, "--comm.hierarchical", str(m == "hier").lower()]}
        for c, m in pairs
    ]
    for run in runs:
        check_job(load_config(None, [*flags, *run["flags"]]), args.nproc)
    spec = {"flags": flags, "runs": runs, "steps": args.steps, "warmup_steps": args.warmup_steps,
            "reference_seeds": [] if args.no_reference else [cfg0.train.seed + i for i in range(args.reference_seeds)],
            "ranks_per_node": args.ranks_per_node}
    res, link_info, wall = _run_workers(args, spec)
    _add_ratios(res["runs"], keep_dirs=bool(args.keep))
    reference_start = "" if args.no_reference else (
        f"; in the reference pair, Steward's powersgd and PyTorch's powerSGD_hook both compress from step "
        f"{max(2, args.warmup_steps)} (start_powerSGD_iter)")
    print(f"{args.flavor}, {args.nproc} processes as 2 nodes, {args.steps} steps of {args.batch_size} x "
          f"{args.seq_len} tokens; every run sends its first {args.warmup_steps} steps uncompressed "
          f"(--warmup-steps = comm.warmup_steps){reference_start}; bytes/step are over the compressed steps",
          file=sys.stderr)
    print(_table(res), file=sys.stderr)
    return _result(args, res, link_info, wall)


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str], list[str], list[str]]:
    """The benchmark's flags, checked; the rest (config flags for the trainer); compressors; modes."""
    p = argparse.ArgumentParser(prog="steward bench comm")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--flavor", default="tiny")
    p.add_argument("--batch-size", type=int, default=8, help="global batch (sequences per step)")
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--compressors", default=",".join(ALL), help=f"comma-separated, of {','.join(ALL)}")
    p.add_argument("--modes", default="flat,hier", help="flat (one ring over all ranks) and/or hier (hierarchical)")
    p.add_argument("--rank", type=int, default=4, help="PowerSGD rank")
    p.add_argument("--topk-fraction", type=float, default=0.01)
    p.add_argument("--warmup-steps", type=int, default=30, help="uncompressed steps first (comm.warmup_steps)")
    p.add_argument("--emulate-link", metavar="RATE", default="", help="rate-limit the inter-node link, e.g. 100mbit")
    p.add_argument("--no-reference", action="store_true", help="skip the comparison with PyTorch's powerSGD_hook")
    p.add_argument("--reference-seeds", type=int, default=1, metavar="N",
                   help="compare with powerSGD_hook at N seeds (train.seed, +1, ...), each pair with the same seed")
    p.add_argument("--nproc", type=int, default=4)
    p.add_argument("--ranks-per-node", type=int, default=2)
    p.add_argument("--keep", default="", metavar="DIR", help="keep the run directories in DIR")
    args, overrides = p.parse_known_args(argv)
    compressors = [c.strip() for c in args.compressors.split(",") if c.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := [c for c in compressors if c not in ALL]:
        raise BenchError(f"--compressors: unknown {', '.join(unknown)}; choose from {', '.join(ALL)}")
    if unknown := [m for m in modes if m not in ("flat", "hier")]:
        raise BenchError(f"--modes: unknown {', '.join(unknown)}; choose flat and/or hier")
    if args.nproc % args.ranks_per_node or args.nproc // args.ranks_per_node != 2:
        raise BenchError("--nproc / --ranks-per-node: the benchmark emulates 2 nodes; give nproc = 2 x ranks-per-node")
    if args.steps <= args.warmup_steps + 3:
        raise BenchError(f"--steps: {args.steps} leaves no compressed steps to time after --warmup-steps "
                         f"{args.warmup_steps}; raise --steps")
    if args.rank < 1:
        raise BenchError(f"--rank: the PowerSGD rank must be >= 1, got {args.rank}")
    if not 0 < args.topk_fraction <= 1:
        raise BenchError(f"--topk-fraction: must be in (0, 1], got {args.topk_fraction}")
    if args.warmup_steps < 0:
        raise BenchError(f"--warmup-steps: must be >= 0, got {args.warmup_steps}")
    return args, overrides, compressors, modes


def _run_workers(args: argparse.Namespace, spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Start the workers (on an emulated link when asked and possible) and wait: their results, what
    was used for the link, and the wall time."""
    link_info: dict[str, Any] = {"requested": args.emulate_link or None, "used": False}
    bits = parse_rate(args.emulate_link) if args.emulate_link else None
    keep = Path(args.keep) if args.keep else None
    with contextlib.ExitStack() as stack:
        out = keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="steward-bench-comm-")))
        out.mkdir(parents=True, exist_ok=True)
        spec = {"out": str(out.resolve()), **spec}
        spec_path = out / "spec.json"
        atomic_write_json(spec_path, spec)
        link = None
        if bits:
            try:
                link = stack.enter_context(LinkEmulation(bits))
                link_info.update(used=True, bits_per_s=bits, qdisc="tbf", namespaces=list(link.ns))
            except EmulationUnavailable as e:
                link_info["reason"] = str(e)
                print(f"steward bench comm: cannot emulate the link ({e}); running on loopback", file=sys.stderr)
        t0 = time.perf_counter()
        _launch(spec, spec_path, link, args.nproc, args.ranks_per_node)
        wall = time.perf_counter() - t0
        res = json.loads((out / "results.json").read_text())
    return res, link_info, wall


def _add_ratios(runs: dict[str, dict[str, Any]], keep_dirs: bool) -> None:
    """Each run's figures against uncompressed flat DDP (none-flat), in place."""
    base = runs["none-flat"]
    for r in runs.values():
        # per compressed step, and over the whole run (the uncompressed warm-up steps included)
        r["inter_bytes_reduction"] = base["inter_bytes_per_step"] / r["inter_bytes_per_step"] if r[
            "inter_bytes_per_step"] else None
        r["inter_bytes_total_reduction"] = base["inter_bytes_total"] / r["inter_bytes_total"] if r[
            "inter_bytes_total"] else None
        r["step_time_speedup"] = base["step_time_s"] / r["step_time_s"]
        r["val_loss_ratio"] = r["val_loss"] / base["val_loss"]
        if not keep_dirs:
            r.pop("run_dir", None)


def _result(args: argparse.Namespace, res: dict[str, Any], link_info: dict[str, Any], wall: float) -> dict[str, Any]:
    compressed = {k: r for k, r in res["runs"].items() if r["compressor"] != "none"}
    best = max(compressed, key=lambda k: compressed[k]["step_time_speedup"]) if compressed else None
    result: dict[str, Any] = {
        "benchmark": "comm",
        "model": args.flavor,
        "processes": args.nproc,
        "nodes": 2,
        "steps": args.steps,
        "compressed_after_step": args.warmup_steps,
        "global_batch": f"{args.batch_size} x {args.seq_len} tokens",
        "link": link_info,
        "timer_resolution_s": time.get_clock_info("perf_counter").resolution,
        "wall_time_s": wall,
        "runs": res["runs"],
        "best_compressed": best,
        "best_step_time_speedup": compressed[best]["step_time_speedup"] if best else None,
    }
    if "powersgd-flat" in res["runs"]:
        r = res["runs"]["powersgd-flat"]
        result["powersgd_inter_bytes_reduction"] = r["inter_bytes_reduction"]
        result["powersgd_inter_bytes_total_reduction"] = r["inter_bytes_total_reduction"]
        result["powersgd_val_loss_ratio"] = r["val_loss_ratio"]
    ref = res.get("reference") or {}
    if ref:
        result["reference"] = _reference_summary(ref, args.rank)
    return result


def _reference_summary(ref: dict[str, Any], rank: int) -> dict[str, Any]:
    """Steward's powersgd against PyTorch's powerSGD_hook, per seed and over the seeds (printed per seed)."""
    pairs = list(ref.values())
    summary = {
        "rank": rank,
        "seeds": {seed: {"steward_powersgd": p["steward"], "torch_powerSGD_hook": p["torch"],
                         "val_loss_steward_minus_torch": p["steward"]["val_loss"] - p["torch"]["val_loss"]}
                  for seed, p in ref.items()},
        "payload_ratio_steward_over_torch": max(
            p["steward"]["payload_bytes_per_step"] / p["torch"]["payload_bytes_per_step"] for p in pairs),
        "mean_val_loss_steward_minus_torch": statistics.mean(
            p["steward"]["val_loss"] - p["torch"]["val_loss"] for p in pairs),
        "seeds_steward_loss_not_higher": sum(p["steward"]["val_loss"] <= p["torch"]["val_loss"] for p in pairs),
    }
    for seed, p in ref.items():
        print(f"reference seed {seed}: powersgd rank {rank} payload/step steward "
              f"{p['steward']['payload_bytes_per_step']:.0f} B, torch {p['torch']['payload_bytes_per_step']:.0f} B; "
              f"val loss steward {p['steward']['val_loss']:.4f}, torch {p['torch']['val_loss']:.4f}", file=sys.stderr)
    return summary


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
    else:
        sys.exit("usage: python -m steward.bench.comm --worker SPEC.json (started by `steward bench comm`)")
