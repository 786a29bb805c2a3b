"""`steward bench peers`: the same job through Steward and through DeepSpeed, FairScale and plain torch.

World size 2 on this machine (gloo, one thread per rank, processes started with torchrun's
environment, a fresh pair per run so that max RSS is the run's own). Every system trains the same
decoder with the same initial weights on the same batches in the same order with the same AdamW,
schedule, clipping and steps (steward.bench.peers_systems). Repetitions are interleaved (rep 1 of
every system, then rep 2, ...; the order rotates per repetition) so that contention on a shared CPU
hits all systems alike; the spread of each system's per-repetition medians is printed as the
resolution. A run whose final loss is not within `--loss-tol` of Steward DDP's did not train the same
job: it is marked invalid and gets no ratio. A peer that is not installed is listed as skipped.

`--link RATE` runs the 2 ranks as 2 emulated nodes of 1 rank (steward.bench.comm's namespaces and
tbf-shaped veth pair): Steward's HSDP uncompressed and compressed (a different job by design: its loss
difference is reported, not held to parity) against every peer setting, and Steward / each peer
library's best setting (`link_ratios`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steward.bench import register
from steward.bench.comm import EmulationUnavailable, LinkEmulation, parse_rate
from steward.bench.peers_audit import AUDIT_ITEMS, inspect_run
from steward.errors import StewardError


class PeersBenchError(StewardError):
    """Bad arguments to `steward bench peers`."""


@dataclass(frozen=True)
class System:
    name: str
    label: str
    needs: str = ""
    """The module the system needs (a peer: an optional install, `.[peers]`)."""
    overrides: tuple[str, ...] = field(default=())
    """Steward's own systems: the parallel layout."""
    src: str = ""
    """A Steward system run from another source tree (`--steward-src`): its `steward` package is
    imported from there, the worker from here."""
    family: str = ""
    """A peer's library (its settings compete for its best setting on the emulated link)."""
    lossy: bool = False
    """Trains a different job by design (compressed gradients): its loss is reported, not held to parity."""

    @property
    def is_steward(self) -> bool:
        return self.name.startswith("steward")


SYSTEMS = [
    System("steward-ddp", "Steward DDP", overrides=("--parallel.dp_shard", "1", "--parallel.dp_replicate", "2")),
    System("steward-zero1", "Steward DDP + ZeRO-1",
           overrides=("--parallel.dp_shard", "1", "--parallel.dp_replicate", "2", "--parallel.shard_optimizer", "true")),
    System("steward-zero2", "Steward ZeRO-2",
           overrides=("--parallel.dp_shard", "1", "--parallel.dp_replicate", "2", "--parallel.shard_optimizer", "true",
                      "--parallel.shard_gradients", "true")),
    System("steward-fsdp2", "Steward FSDP2", overrides=("--parallel.dp_shard", "2", "--parallel.dp_replicate", "1")),
    System("torch-ddp", "torch DDP", family="torch"),
    System("torch-fsdp2", "torch FSDP2", family="torch"),
    System("deepspeed-zero1", "DeepSpeed ZeRO-1", needs="deepspeed", family="DeepSpeed"),
    System("deepspeed-zero2", "DeepSpeed ZeRO-2", needs="deepspeed", family="DeepSpeed"),
    System("deepspeed-zero3", "DeepSpeed ZeRO-3", needs="deepspeed", family="DeepSpeed"),
    System("fairscale-oss", "FairScale OSS+ShardedDDP", needs="fairscale", family="FairScale"),
]
REFERENCE = "steward-ddp"
WORLD = 2
_LAYOUT_2X1 = ("--parallel.dp_shard", "1", "--parallel.dp_replicate", "2")
LINK_STEWARD = [
    # 2 nodes x 1 rank: HSDP has nothing to shard inside a node, so its layout is DDP's (the reference)
    System("steward-ddp", "Steward HSDP 2x1 (= DDP)", overrides=_LAYOUT_2X1),
    System("steward-powersgd", "Steward HSDP 2x1 + PowerSGD", overrides=(*_LAYOUT_2X1, "--comm.compressor", "powersgd"),
           lossy=True),
]
"""Steward's systems on the emulated link (`--link`): uncompressed, and with the inter-node all-reduce
compressed (PowerSGD at comm.rank, 4 unless given; uncompressed for the first --warmup steps)."""


def link_systems(systems: list[System]) -> list[System]:
    """The systems of a `--link` run: Steward's link systems and every peer setting of `systems`."""
    return [*LINK_STEWARD, *(s for s in systems if not s.is_steward)]


def missing_reason(system: System) -> str | None:
    """Why `system` cannot run here (its package is not importable), or None."""
    if not system.needs:
        return None
    try:
        found = importlib.util.find_spec(system.needs) is not None
    except ModuleNotFoundError:  # the parent of a dotted name (megatron of megatron.core) is missing
        found = False
    return None if found else f"{system.needs} is not installed (pip install -e '.[peers]')"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WORKER = ("-m", "steward.bench.peers_systems")
"""The worker each rank runs (benchmarks/gpu_peers.py runs itself, with its GPU-only loops added)."""
CPU_ENV = {"OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu"}


def launch(system: System, overrides: list[str], run_dir: Path, timeout: float, world: int = WORLD,
           worker: tuple[str, ...] = WORKER, env: dict[str, str] | None = None,
           link: LinkEmulation | None = None) -> tuple[list[dict] | None, str]:
    """Run `system` on `world` fresh processes (`env` added to their environment, CPU_ENV by default;
    with `link`, rank R alone on emulated node R, talking to the other over the shaped veth pair);
    (each rank's result, or None on failure; the failure's last output line)."""
    run_dir.mkdir(parents=True)
    spec = run_dir.parent / f"{run_dir.name}.spec.json"
    spec.write_text(json.dumps({"system": system.name, "out": str(run_dir.parent / f"{run_dir.name}.result"),
                                "overrides": [*overrides, *system.overrides, "--job.out", str(run_dir)]}))
    (run_dir.parent / f"{run_dir.name}.result").mkdir()
    port = _free_port()
    extra = dict(CPU_ENV if env is None else env)
    if system.src:  # that tree's steward, this tree's worker (run as a file, not imported from that tree)
        extra["PYTHONPATH"] = system.src
        worker = ("-c", f"import runpy; runpy.run_path({str(Path(__file__).with_name('peers_systems.py'))!r}, "
                        "run_name='__main__')")
    procs = []
    for rank in range(world):
        rank_env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                        LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), **extra)
        prefix: list[str] = []
        if link is not None:  # one rank per node: gloo and the rendezvous cross the shaped pair only
            prefix = ["ip", "netns", "exec", link.ns[rank]]
            rank_env.update(LOCAL_RANK="0", LOCAL_WORLD_SIZE="1", MASTER_ADDR=link.ADDRS[0],
                            GLOO_SOCKET_IFNAME=link.veth[rank])
        procs.append(subprocess.Popen([*prefix, sys.executable, *worker, str(spec)], env=rank_env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            return None, f"timed out after {timeout:.0f} s"
    if any(p.returncode for p in procs):
        lines = [line for log in logs for line in log.splitlines() if line.strip()]
        errors = [line for line in lines if "Error" in line or "error" in line]
        return None, (errors or lines or ["no output"])[-1].strip()[:300]
    results = run_dir.parent / f"{run_dir.name}.result"
    return [json.loads((results / f"rank-{r}.json").read_text()) for r in range(world)], ""


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def _rates(key: str, reps: list[list[list[float]]], tokens_per_step: int, warmup: int) -> dict[str, Any]:
    """Tokens per second of each step after `warmup` (the step's time: the mean over the clocks given,
    one per rank or rank 0's), pooled over the repetitions: median, quartiles, each repetition's median
    and their spread."""
    per_step, rep_medians = [], []
    for clocks in reps:
        steps = [[b - a for a, b in zip(ends[warmup - 1:], ends[warmup:])] for ends in clocks]
        rates = [tokens_per_step / statistics.fmean(dts) for dts in zip(*steps)]
        per_step += rates
        rep_medians.append(statistics.median(rates))
    q1, median, q3 = _quartiles(per_step)
    return {key: median, f"{key}_iqr": [q1, q3], f"{key}_per_rep": rep_medians,
            f"{key}_spread": (max(rep_medians) - min(rep_medians)) / median}


def _energy(reps: list[list[dict]], tokens_per_step: int, warmup: int) -> dict[str, Any]:
    """Joules per token: each step's joules (summed over the ranks) after `warmup` over the step's tokens,
    pooled over the repetitions: median and quartiles (a median, like tokens/s: Steward's last step
    also runs its final validation inside the meter's lap), with the meter's source."""
    if not all(ranks[0].get("energy_j") for ranks in reps):
        return {"energy_per_token_j": None, "energy_source": None,
                "energy_note": "no per-step energy_j (energy.enabled false)"}
    per_token = [ranks[0]["energy_j"][str(s)] / tokens_per_step
                 for ranks in reps for s in range(warmup + 1, len(ranks[0]["step_ends"]) + 1)]
    q1, median, q3 = _quartiles(per_token)
    sources = sorted({ranks[0]["energy_source"] for ranks in reps})
    return {"energy_per_token_j": median, "energy_per_token_j_iqr": [q1, q3], "energy_source": "/".join(sources),
            "energy_note": "estimated, not measured (CPU time x watts per core)" if "estimate" in sources[0]
            else None}


def summarize(system: System, reps: list[list[dict]], tokens_per_step: int, warmup: int) -> dict[str, Any]:
    """One system's figures over its repetitions (rank 0's clock; memory per rank; energy summed over
    the ranks)."""
    losses = [ranks[0]["final_loss"] for ranks in reps]
    return {
        **_rates("tokens_per_s", [[ranks[0]["step_ends"]] for ranks in reps], tokens_per_step, warmup),
        **_rates("cpu_tokens_per_s", [[r["step_cpu_ends"] for r in ranks] for ranks in reps], tokens_per_step,
                 warmup),
        "first_step_s": statistics.median(ranks[0]["first_step_s"] for ranks in reps),
        "live_tensor_bytes": [max(ranks[r]["live_tensor_bytes"] for ranks in reps) for r in range(len(reps[0]))],
        "max_rss_bytes": [max(ranks[r]["max_rss_bytes"] for ranks in reps) for r in range(len(reps[0]))],
        **_energy(reps, tokens_per_step, warmup),
        "final_loss": losses[0],
        "final_loss_spread_over_reps": max(losses) - min(losses),
    }


def ratios(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Steward system / peer, for every valid pair: tokens/s (wall and CPU time), max live tensor bytes,
    max RSS and joules per token (below 1: Steward used less)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    valid = {k: v for k, v in rows.items() if v["status"] == "ok"}
    for s, srow in valid.items():
        if not s.startswith("steward"):
            continue
        out[s] = {p: {"tokens_per_s": srow["tokens_per_s"] / prow["tokens_per_s"],
                      "cpu_tokens_per_s": srow["cpu_tokens_per_s"] / prow["cpu_tokens_per_s"],
                      "live_tensor_bytes": max(srow["live_tensor_bytes"]) / max(prow["live_tensor_bytes"]),
                      "max_rss_bytes": max(srow["max_rss_bytes"]) / max(prow["max_rss_bytes"]),
                      "energy_per_token_j": srow["energy_per_token_j"] / prow["energy_per_token_j"]
                      if srow["energy_per_token_j"] and prow["energy_per_token_j"] else None}
                  for p, prow in valid.items() if not p.startswith("steward")}
    return out


def parse_args(argv: list[str], systems: list[System] = SYSTEMS, prog: str = "steward bench peers",
               flavor: str = "tiny") -> tuple[argparse.Namespace, list[str]]:
    """The flags of the comparison (the remaining arguments are config overrides for every system)."""
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=10, help="steps not timed (the median is over the rest)")
    p.add_argument("--reps", type=int, default=3, help="repetitions, interleaved across the systems")
    p.add_argument("--batch-size", type=int, default=8, help="global batch (sequences)")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--flavor", default=flavor)
    p.add_argument("--systems", default="", help="comma-separated (default: all), from: " + ", ".join(
        s.name for s in systems) + "; with --link: " + ", ".join(s.name for s in link_systems(systems)))
    p.add_argument("--loss-tol", type=float, default=1e-4,
                   help="largest |final loss - Steward DDP's| of a run that trained the same job")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per run before its processes are killed")
    p.add_argument("--keep", default="", help="keep every run's outputs in this folder (default: a temporary one)")
    p.add_argument("--steward-src", default="",
                   help="also run Steward's systems with the steward package of this source folder (e.g. an "
                        "earlier commit's src/, from git archive), to measure a change in the same invocation")
    p.add_argument("--link", metavar="RATE", default="",
                   help="run the 2 ranks as 2 emulated nodes joined by a link of RATE (e.g. 100mbit; root, "
                        "iproute2), with Steward's HSDP and compressed HSDP against each peer's settings")
    args, overrides = p.parse_known_args(argv)
    args.link_bits = parse_rate(args.link, "--link") if args.link else None
    if args.link:
        systems = link_systems(systems)
    if args.steps <= args.warmup or args.warmup < 1:
        raise PeersBenchError(f"--warmup: must be at least 1 and below --steps ({args.steps}); got {args.warmup}")
    if args.reps < 1:
        raise PeersBenchError(f"--reps: must be at least 1; got {args.reps}")
    if args.batch_size % WORLD:
        raise PeersBenchError(f"--batch-size: must be a multiple of the world size {WORLD}; got {args.batch_size}")
    known = {s.name for s in systems}
    chosen = [name.strip() for name in args.systems.split(",") if name.strip()] or [s.name for s in systems]
    unknown = [name for name in chosen if name not in known]
    if unknown or REFERENCE not in chosen:
        raise PeersBenchError(f"--systems: {', '.join(unknown) or 'the list'} "
                              f"{'is not a system' if unknown else f'must include {REFERENCE} (the reference)'}; "
                              f"choose from {', '.join(s.name for s in systems)}")
    args.systems = [s for s in systems if s.name in chosen]
    if args.steward_src:
        src = Path(args.steward_src).resolve()
        if not (src / "steward" / "train" / "trainer.py").is_file():
            raise PeersBenchError(f"--steward-src: {args.steward_src} holds no steward package (steward/train/"
                                  "trainer.py); give the src/ folder of a Steward source tree")
        args.systems += [dataclasses.replace(s, name=f"{s.name}@src", label=f"{s.label} (--steward-src)",
                                             src=str(src)) for s in args.systems if s.is_steward]
    return args, overrides


@dataclass(frozen=True)
class Launcher:
    """Where and how the ranks of every run start."""

    world: int = WORLD
    device: str = "cpu"
    worker: tuple[str, ...] = WORKER
    env: dict[str, str] | None = None
    link: LinkEmulation | None = None


def job_overrides(args: argparse.Namespace, overrides: list[str], how: Launcher) -> list[str]:
    """The config overrides of the job every system runs (each system adds its layout and job.out)."""
    return ["--model.flavor", args.flavor, "--train.steps", str(args.steps), "--train.batch_size",
            str(args.batch_size), "--train.seq_len", str(args.seq_len), "--train.threads", "1",
            "--train.device", how.device, "--train.mixed_precision", "fp32", "--train.val_every", "0",
            "--checkpoint.every", "0", *(("--comm.warmup_steps", str(args.warmup)) if how.link else ()),
            *overrides]


def _run_all(args: argparse.Namespace, overrides: list[str], root: Path, how: Launcher) -> tuple[dict, dict]:
    """Every runnable system, `args.reps` times, interleaved; (results per system, failures per system)."""
    base = job_overrides(args, overrides, how)
    runnable = [s for s in args.systems if missing_reason(s) is None]
    results: dict[str, list] = {s.name: [] for s in runnable}
    failed: dict[str, str] = {}
    for rep in range(args.reps):
        shift = rep % len(runnable)
        for system in runnable[shift:] + runnable[:shift]:
            if system.name in failed:
                continue
            print(f"peers: rep {rep + 1}/{args.reps} {system.label}", file=sys.stderr, flush=True)
            ranks, error = launch(system, base, root / f"rep{rep}" / system.name, args.timeout, how.world,
                                  how.worker, how.env, how.link)
            if ranks is None:
                failed[system.name] = error
            else:
                results[system.name].append(ranks)
    return results, failed


@register("peers", "Steward vs DeepSpeed ZeRO, FairScale OSS and plain torch on the same job (2 ranks, gloo)")
def bench_peers(argv: list[str]) -> dict[str, Any]:
    args, overrides = parse_args(argv)
    return compare(args, overrides, Launcher())


def compare(args: argparse.Namespace, overrides: list[str], how: Launcher) -> dict[str, Any]:
    """Run every system of `args.systems` and compare them (the result `--json` prints); with `--link`,
    on two emulated nodes whose link the benchmark creates and removes."""
    with contextlib.ExitStack() as stack:
        if args.link_bits:
            try:
                how = dataclasses.replace(how, link=stack.enter_context(LinkEmulation(args.link_bits)))
            except EmulationUnavailable as e:
                raise PeersBenchError(f"--link: blocked, cannot emulate two nodes here: {e}") from e
        return _compare(args, overrides, how)


def _compare(args: argparse.Namespace, overrides: list[str], how: Launcher) -> dict[str, Any]:
    tokens_per_step = args.batch_size * args.seq_len
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        results, failed = _run_all(args, overrides, root, how)
        rows: dict[str, dict[str, Any]] = {}
        for system in args.systems:
            row: dict[str, Any] = {"label": system.label, "family": system.family, "lossy": system.lossy}
            reason = missing_reason(system)
            if reason or system.name in failed:
                row.update(status="skipped" if reason else "failed", reason=reason or failed[system.name])
            else:
                row.update(status="ok", reason="", **summarize(system, results[system.name], tokens_per_step,
                                                              args.warmup))
                row["audit"] = inspect_run(root / "rep0" / system.name)
            rows[system.name] = row
    _check_parity(rows, args.loss_tol)
    table = ratios(rows)
    on_link = link_ratios(rows, args.systems, table) if how.link else None
    print(format_table(rows) + "\n\n" + format_ratios(table)
          + (f"\n\non the {args.link} link, Steward / each peer's best setting:\n" + format_link(on_link)
             if on_link else ""), file=sys.stderr)
    ok = [r for r in rows.values() if r["status"] == "ok"]
    return {
        "benchmark": "peers",
        "world_size": how.world,
        "device": how.device,
        "model": args.flavor,
        "global_batch": [args.batch_size, args.seq_len],
        "steps": args.steps,
        "warmup": args.warmup,
        "reps": args.reps,
        "loss_tolerance": args.loss_tol,
        "resolution": max((r["tokens_per_s_spread"] for r in ok), default=None),
        "cpu_resolution": max((r["cpu_tokens_per_s_spread"] for r in ok), default=None),
        "audit_items": list(AUDIT_ITEMS),
        "systems": rows,
        "ratios": table,
        "link": {"rate": args.link, "bits_per_s": args.link_bits, "nodes": 2, "ranks_per_node": 1,
                 "how": "network namespaces joined by a veth pair, tc tbf on both ends (steward bench comm's)"}
        if how.link else None,
        "link_ratios": on_link,
        "vs_steward_src": {name: {k: rows[name][k] / rows[f"{name}@src"][k] for k in ("tokens_per_s", "cpu_tokens_per_s")}
                           for name in rows if f"{name}@src" in rows
                           and "tokens_per_s" in rows[name] and "tokens_per_s" in rows[f"{name}@src"]},
    }


def _check_parity(rows: dict[str, dict[str, Any]], tol: float) -> None:
    """Mark every run whose final loss is not within `tol` of Steward DDP's invalid (a peer that trained
    another job, e.g. FairScale's ShardedDDP with the optimizer's zero_grad(set_to_none=True))."""
    ref = rows.get(REFERENCE, {})
    for row in rows.values():
        if row["status"] != "ok":
            continue
        if ref.get("status") != "ok":
            row.update(status="invalid", reason=f"no loss to compare with: {REFERENCE} {ref.get('status')}")
            continue
        row["loss_diff"] = row["final_loss"] - ref["final_loss"]
        if row.get("lossy"):
            row["parity"] = "not expected: compressed gradients train a different job; the loss difference is its cost"
        elif abs(row["loss_diff"]) > tol:
            row.update(status="invalid", reason=f"final loss {row['final_loss']:.6f} differs from {REFERENCE}'s "
                                                f"by {row['loss_diff']:.2e} (> {tol:g}): not the same training")


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """The human-readable tables: figures per system, then what each run left for an auditor."""
    lines = [f"{'system':<30} {'status':<8} {'tokens/s':>9} {'IQR':>13} {'spread':>7} {'CPU tok/s':>9} "
             f"{'IQR':>13} {'spread':>7} {'1st step':>8} {'live MiB/rank':>14} {'RSS MiB/rank':>13} {'J/token (source)':>18} "
             f"{'loss diff':>10}"]
    for row in rows.values():
        if row["status"] not in ("ok", "invalid") or "tokens_per_s" not in row:
            lines.append(f"{row['label']:<30} {row['status']:<8} {row['reason']}")
            continue
        mib = 2**20
        energy = (f"{row['energy_per_token_j']:.2e} {row['energy_source']}" if row["energy_per_token_j"] is not None
                  else "n/a")
        rates = " ".join(f"{row[k]:>9.0f} {row[f'{k}_iqr'][0]:>6.0f}-{row[f'{k}_iqr'][1]:<6.0f} "
                         f"{row[f'{k}_spread']:>7.1%}" for k in ("tokens_per_s", "cpu_tokens_per_s"))
        status = "lossy" if row.get("lossy") else row["status"]  # a compressed run: no parity expected
        lines.append(
            f"{row['label']:<30} {status:<8} {rates} {row['first_step_s']:>7.3f}s "
            f"{'/'.join(f'{b / mib:.1f}' for b in row['live_tensor_bytes']):>14} "
            f"{'/'.join(f'{b / mib:.0f}' for b in row['max_rss_bytes']):>13} {energy:>18} "
            f"{row.get('loss_diff', float('nan')):>10.1e}")
    lines.append("")
    lines.append(f"{'auditor finds':<30} " + " | ".join(AUDIT_ITEMS))
    for row in rows.values():
        if "audit" in row:
            lines.append(f"{row['label']:<30} " + " | ".join(
                "yes" if row["audit"][item]["found"] else "no" for item in AUDIT_ITEMS))
    return "\n".join(lines)


def format_ratios(table: dict[str, dict[str, dict[str, float | None]]]) -> str:
    """Steward / peer for every valid pair (tokens/s: above 1 is faster; memory and J/token: below 1 is less)."""
    keys = {"tokens_per_s": "tokens/s", "cpu_tokens_per_s": "CPU tok/s", "max_rss_bytes": "max RSS",
            "energy_per_token_j": "J/token"}
    lines = [f"{'Steward / peer':<46} " + " ".join(f"{v:>10}" for v in keys.values())]
    for s, peers_ in table.items():
        for p, r in peers_.items():
            lines.append(f"{s + ' / ' + p:<46} " + " ".join(
                f"{r[k]:>9.2f}x" if r.get(k) is not None else f"{'n/a':>10}" for k in keys))
    return "\n".join(lines)


def link_ratios(rows: dict[str, dict[str, Any]], systems: list[System],
                table: dict[str, dict[str, dict[str, float | None]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Steward system / each peer library's best setting (its valid setting with the most tokens/s), with
    the Steward run's final-loss difference from the uncompressed reference."""
    best: dict[str, str] = {}
    for s in systems:
        row = rows[s.name]
        if s.family and row["status"] == "ok" and (
                s.family not in best or row["tokens_per_s"] > rows[best[s.family]]["tokens_per_s"]):
            best[s.family] = s.name
    return {name: {family: {"best": peer, **table[name][peer], "loss_diff": rows[name]["loss_diff"]}
                   for family, peer in best.items()} for name in table}


def format_link(on_link: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = [f"{'Steward':<22} {'peer':<10} {'its best':<16} {'tokens/s':>9} {'CPU tok/s':>10} {'J/token':>8} "
             f"{'Steward loss diff':>17}"]
    for name, families in on_link.items():
        for family, r in families.items():
            energy = f"{r['energy_per_token_j']:.2f}x" if r["energy_per_token_j"] is not None else "n/a"
            lines.append(f"{name:<22} {family:<10} {r['best']:<16} {r['tokens_per_s']:>8.2f}x "
                         f"{r['cpu_tokens_per_s']:>9.2f}x {energy:>8} {r['loss_diff']:>17.2e}")
    return "\n".join(lines)
