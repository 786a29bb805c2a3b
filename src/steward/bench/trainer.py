"""`steward bench trainer`: the trainer's throughput against a bare PyTorch loop.

Same model, same batches, same optimizer work (AdamW, clipping, schedule), same precision, one
process. Both are timed over the same steps after a warm-up; rounds alternate so that drift of the
machine hits both; the best round of each is compared.

`--energy`: the energy meter's overhead instead: the trainer with the meter on against the trainer with
it off (rounds interleaved, order alternating), and the meter's own cost per step timed directly.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from steward.bench import register
from steward.config import Energy, load_config
from steward.data import build_data
from steward.train.callbacks import Callback
from steward.train.energy import build_meter
from steward.train.optim import build_optimizer, build_scheduler
from steward.train.trainer import Trainer, clip_grad_norm, lm_loss


class StepClock(Callback):
    """The time each step ended (after the trainer's own callbacks)."""

    def __init__(self) -> None:
        self.times: dict[int, float] = {}

    def on_step_end(self, trainer, step, metrics) -> None:
        self.times[step] = time.perf_counter()

    def step_times(self, warmup: int) -> list[float]:
        """Seconds between consecutive steps' ends after the warm-up (the loop's whole step, meter included)."""
        steps = sorted(self.times)
        return [self.times[s] - self.times[s - 1] for s in steps if s > warmup and s - 1 in self.times]


def _trainer_round(cfg, warmup: int) -> tuple[float, Trainer, StepClock]:
    clock = StepClock()
    trainer = Trainer(cfg, callbacks=[clock])
    trainer.run()
    steps = cfg.train.steps
    elapsed = clock.times[steps] - clock.times[warmup]
    return (steps - warmup) * cfg.train.batch_size * cfg.train.seq_len / elapsed, trainer, clock


def _bare_round(cfg, trainer: Trainer, batches: list[torch.Tensor], warmup: int) -> float:
    """A plain loop over the same batches with a freshly built model of the same shape."""
    from steward.models import build_model

    torch.manual_seed(cfg.train.seed)
    model = build_model(trainer.model_args, device="cpu")
    opt = build_optimizer(cfg.train, model)
    sched = build_scheduler(cfg.train, opt)
    t_warm = 0.0
    for i, batch in enumerate(batches):
        loss = lm_loss(model(batch[:, :-1]), batch[:, 1:])
        loss.backward()
        clip_grad_norm(model, cfg.train.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        if i + 1 == warmup:
            t_warm = time.perf_counter()
    elapsed = time.perf_counter() - t_warm
    return (len(batches) - warmup) * cfg.train.batch_size * cfg.train.seq_len / elapsed


@register("trainer", "trainer throughput vs a bare PyTorch loop (same model, batch, precision)")
def bench_trainer(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="steward bench trainer")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--flavor", default="tiny")
    p.add_argument("--energy", action="store_true", help="the energy meter's overhead: meter on vs off")
    args, overrides = p.parse_known_args(argv)
    base = [
        "--model.flavor", args.flavor, "--train.steps", str(args.steps), "--train.val_every", "0",
        "--checkpoint.enabled", "false", "--train.device", "cpu", "--governance.enabled", "false",
    ]
    if args.energy:
        return _bench_energy(args, base, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        trainer_tps, bare_tps = [], []
        for r in range(args.rounds):
            cfg = load_config(None, [*base, "--job.out", f"{tmp}/round{r}", *overrides])
            tps, trainer, _ = _trainer_round(cfg, args.warmup)
            trainer_tps.append(tps)
            # the exact batches the trainer saw, from a fresh loader over the same data
            data = build_data(cfg.data, cfg.train, trainer.tokenizer, 0, 1)
            batches = [data.train.next_batch() for _ in range(args.steps)]
            bare_tps.append(_bare_round(cfg, trainer, batches, args.warmup))
    best_trainer, best_bare = max(trainer_tps), max(bare_tps)
    return {
        "benchmark": "trainer",
        "model": args.flavor,
        "steps_timed": args.steps - args.warmup,
        "rounds": args.rounds,
        "trainer_tokens_per_s": best_trainer,
        "bare_tokens_per_s": best_bare,
        "ratio": best_trainer / best_bare,
        "all_rounds": {"trainer": trainer_tps, "bare": bare_tps},
    }


def _lap_cost(meter, n: int) -> float:
    """Seconds one meter.lap() takes, the mean of `n` (the read the trainer makes once per step)."""
    meter.start()
    t0 = time.perf_counter()
    for _ in range(n):
        meter.lap()
    seconds = (time.perf_counter() - t0) / n
    meter.close()
    return seconds


def _job_laps_worker(rank: int, port: int, cfg: Energy, n: int, every: int, queue) -> None:
    """One of 2 gloo ranks timing the meter as the trainer runs it: a lap per step, summed over the
    ranks (one all-reduce of the pending laps) every `every` steps (metrics rows every train.log_every)."""
    import torch.distributed as dist

    from steward.train.energy import JobLaps

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        laps = JobLaps(build_meter(cfg, torch.device("cpu"), host_counters=rank == 0), torch.device("cpu"))
        laps.meter.start()
        seconds = []
        for step in range(1, n + 1):
            t0 = time.perf_counter()
            laps.lap()
            if step % every == 0:
                laps.take()
            seconds.append(time.perf_counter() - t0)
        laps.meter.close()
        queue.put((statistics.median(seconds), statistics.fmean(seconds)))
    finally:
        dist.destroy_process_group()


def _two_rank_lap_cost(cfg: Energy, n: int, every: int) -> tuple[float, float]:
    """Seconds per step of the meter's laps on 2 gloo ranks on this host, summed over the ranks every
    `every` steps: (median, mean) of the slower rank (the mean counts the sums' share of the steps)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    queue = mp.get_context("spawn").Queue()
    mp.start_processes(_job_laps_worker, args=(port, cfg, n, every, queue), nprocs=2, start_method="spawn")
    return max(queue.get(timeout=60) for _ in range(2))


def _fake_powercap(root: Path, packages: int) -> Path:
    """Package zones laid out as /sys/class/powercap's (name, energy_uj, max_energy_range_uj), to time the
    RAPL reader's file reads on a host without RAPL (sysfs adds the MSR read behind energy_uj)."""
    for n in range(packages):
        z = root / f"intel-rapl:{n}"
        z.mkdir(parents=True)
        for name, text in (("name", f"package-{n}"), ("energy_uj", "1000"), ("max_energy_range_uj", "262143328850")):
            (z / name).write_text(text + "\n")
    return root


@contextlib.contextmanager
def _timed_laps(seconds: list[float]):
    """The trainer's per-step meter work (steward.train.energy.JobLaps: the lap, and the sum over the
    ranks where a row is written), timed where it runs: in the loop, between the steps, with the loop's
    caches and threads around it; one entry per step."""
    from steward.train.energy import JobLaps

    lap, take = JobLaps.lap, JobLaps.take

    def timed_lap(self) -> None:
        t0 = time.perf_counter()
        lap(self)
        seconds.append(time.perf_counter() - t0)

    def timed_take(self) -> list[float]:
        t0 = time.perf_counter()
        joules = take(self)
        if seconds:
            seconds[-1] += time.perf_counter() - t0
        return joules

    JobLaps.lap, JobLaps.take = timed_lap, timed_take
    try:
        yield
    finally:
        JobLaps.lap, JobLaps.take = lap, take


def _bench_energy(args, base: list[str], overrides: list[str]) -> dict[str, Any]:
    """Meter on vs off, interleaved in the same invocation (order alternating per round), and the
    meter's own per-step cost timed directly, in the loop and alone; the overhead is that cost over the
    median step time (on a shared machine the on/off step times differ by far more than that)."""
    times: dict[bool, list[list[float]]] = {True: [], False: []}
    in_loop: list[float] = []
    source = basis = ""
    with tempfile.TemporaryDirectory() as tmp, _timed_laps(in_loop):
        for r in range(args.rounds):
            for on in ((True, False) if r % 2 == 0 else (False, True)):
                cfg = load_config(None, [*base, "--job.out", f"{tmp}/r{r}-{on}", *overrides,
                                         "--energy.enabled", str(on).lower()])
                _, trainer, clock = _trainer_round(cfg, args.warmup)
                times[on].append(clock.step_times(args.warmup))
                if on:
                    source, basis = trainer.energy.source, trainer.energy.basis
        device = trainer.dist.device
        lap_s = _lap_cost(build_meter(load_config(None, [*base, *overrides]).energy, device), 2000)
        energy_cfg = load_config(None, [*base, *overrides]).energy
        two_ranks_s = {every: _two_rank_lap_cost(energy_cfg, 500, every) for every in (1, 10)}
        rapl_s = _lap_cost(build_meter(Energy(powercap_root=str(_fake_powercap(Path(tmp) / "pc", 2))), device),
                           2000)
    med = {on: statistics.median([t for rnd in times[on] for t in rnd]) for on in (True, False)}
    round_medians = {on: [statistics.median(rnd) for rnd in times[on]] for on in (True, False)}
    spread = {on: (max(v) - min(v)) / statistics.median(v) for on, v in round_medians.items()}
    return {
        "benchmark": "trainer --energy",
        "model": args.flavor,
        "steps_timed": args.steps - args.warmup,
        "rounds": args.rounds,
        "meter_source": source,
        "meter_basis": basis,
        "step_time_on_s": med[True],
        "step_time_off_s": med[False],
        "ratio_on_off": med[True] / med[False],
        "resolution_rounds": max(spread.values()),
        "meter_in_loop_s": statistics.median(in_loop),
        "meter_in_loop_max_s": max(in_loop),
        "meter_in_loop_overhead": statistics.median(in_loop) / med[False],
        "meter_lap_s": lap_s,
        "meter_overhead": lap_s / med[False],
        "meter_2_ranks_s": two_ranks_s[1][0],  # median: a lap and its sum (train.log_every 1)
        "meter_2_ranks_overhead": two_ranks_s[1][0] / med[False],
        "meter_2_ranks_mean_s": two_ranks_s[1][1],
        "meter_2_ranks_log_every_10_mean_s": two_ranks_s[10][1],  # a sum every 10th step
        "meter_2_ranks_log_every_10_overhead": two_ranks_s[10][1] / med[False],
        "rapl_fake_tree_lap_s": rapl_s,
        "rapl_fake_tree_overhead": rapl_s / med[False],
        "timer_resolution_s": time.get_clock_info("perf_counter").resolution,
        "round_medians_s": {"on": round_medians[True], "off": round_medians[False]},
    }
