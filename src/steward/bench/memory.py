"""`steward bench memory`: activation memory and step time of keep, full, selective (torchtitan's
fixed choice on every block) and Steward's per-block plans at several budgets, for one model.

Budgets are fractions of the activation memory `keep` is measured to use in the same invocation.
Activation memory is measured by the tracker (saved and transient tensors, byte-exact; parameter
gradients are static memory and left out); on a GPU `max_memory_allocated` of the same step is
printed next to it. Step time is a whole training step (forward, backward, AdamW): each cycle
runs one step of every configuration in rotating order, so that a drift of the machine's load
touches all alike; times are medians over cycles (with the interquartile range), and the ratios
against `keep` and against `full` are medians of the ratios within a cycle.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F

from steward.bench import register
from steward.errors import StewardError
from steward.io import atomic_write_bytes


def _step(model, optimizer, tokens, autocast) -> None:
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    with autocast:
        logits = model(inputs)
    F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten()).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _allocator_peak(model, optimizer, tokens, autocast) -> dict[str, int]:
    """max_memory_allocated over one training step, and its excess over what was allocated before
    (parameters, optimizer states): activations plus the gradients as they appear."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    _step(model, optimizer, tokens, autocast)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    return {"max_memory_allocated": int(peak), "allocated_before": int(before), "step_excess": int(peak - before)}


def _chart(rows: list[dict[str, Any]], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        x, y = r["activation_bytes"] / 2**20, r["step_time_s"] * 1e3
        ax.scatter([x], [y], s=40, color="tab:orange" if r["name"].startswith("plan") else "tab:blue")
        ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        if r.get("budget_bytes"):
            ax.axvline(r["budget_bytes"] / 2**20, color="tab:orange", alpha=0.25, linestyle=":")
    ax.set_xlabel("peak activation memory (MiB)")
    ax.set_ylabel("step time (ms)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def _table(rows: list[dict[str, Any]], cuda: bool) -> str:
    head = (f"{'config':<12} {'act MiB':>9} {'pred MiB':>9} {'budget':>8} {'mem/keep':>8} {'mem/full':>8} "
            f"{'step ms':>8} {'IQR':>7} {'t/keep':>7} {'t/full':>7}")
    if cuda:
        head += f" {'max_alloc MiB':>14}"
    lines = ["", head]
    for r in rows:
        line = (f"{r['name']:<12} {r['activation_bytes'] / 2**20:>9.1f} {r['predicted_activation_bytes'] / 2**20:>9.1f} "
                f"{(format(r['budget_bytes'] / 2**20, '.1f') if r.get('budget_bytes') else '-'):>8} "
                f"{r['mem_vs_keep']:>8.3f} {r['mem_vs_full']:>8.3f} {r['step_time_s'] * 1e3:>8.2f} "
                f"{100 * r['time_spread']:>6.1f}% {r['time_vs_keep']:>7.3f} {r['time_vs_full']:>7.3f}")
        if cuda:
            line += f" {r['max_memory_allocated'] / 2**20:>14.1f}"
        lines.append(line)
    return "\n".join(lines)


@register("memory", "activation memory and step time: keep, full, selective, and per-block plans at several budgets")
def bench_memory(argv: list[str]) -> dict[str, Any]:
    from steward.memory.apply import apply_policies
    from steward.models import FLAVORS, build_model, build_model_args
    from steward.planning.profile import profile_model
    from steward.planning.remat import predict, solve_activations
    from steward.planning.tracker import measure_activations

    a, fractions = _parse(argv, list(FLAVORS))
    if a.threads:
        torch.set_num_threads(a.threads)
    cuda = a.device == "cuda"
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    batch = a.batch or 8
    seq = a.seq_len or (1024 if cuda else 256)
    precision = {"auto": "autocast-bf16" if cuda else "fp32", "fp32": "fp32", "bf16": "autocast-bf16"}[a.precision]
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16) if precision != "fp32" else nullcontext()
    args = build_model_args(a.flavor, max_seq_len=seq)

    torch.manual_seed(a.seed)
    print(f"profiling one {a.flavor} block ({batch} x {seq} tokens, {precision}, {device})", file=sys.stderr, flush=True)
    profile = profile_model(args, batch, seq, device=device, precision=precision, method="measured")
    analytic = profile_model(args, batch, seq, device=device, precision=precision, method="analytic",
                             policies=("keep", "selective", "full"))
    model = build_model(args, device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
    tokens = torch.randint(0, args.vocab_size, (batch, seq + 1), device=device)
    n = args.n_layers

    configs: dict[str, list[str]] = {p: [p] * n for p in ("keep", "full", "selective")}
    if cuda:
        configs["offload"] = ["offload"] * n

    def measure(policies: list[str]) -> dict[str, Any]:
        print(f"measuring activations: {predict(profile, policies).describe()}", file=sys.stderr, flush=True)
        apply_policies(model.blocks(), policies, device)
        out = {"activation_bytes": measure_activations(model, tokens, autocast)["activation_peak_bytes"]}
        if cuda:
            out.update(_allocator_peak(model, optimizer, tokens, autocast))
        return out

    _step(model, optimizer, tokens, autocast)  # optimizer states exist before anything is measured
    measured = {name: measure(pols) for name, pols in configs.items()}
    keep_act = measured["keep"]["activation_bytes"]
    budgets: dict[str, int] = {}
    skipped: list[str] = []
    for f in fractions:
        name = f"plan@{f:g}"
        budget = int(f * keep_act)
        pols = solve_activations(profile, budget)
        if pols is None:
            print(f"{name}: no plan fits {budget / 2**20:.1f} MiB of activations; skipped", file=sys.stderr)
            skipped.append(name)
            continue
        configs[name], budgets[name] = pols, budget
        measured[name] = measure(pols)

    samples = _time_steps(lambda pols: apply_policies(model.blocks(), pols, device),
                          lambda: _step(model, optimizer, tokens, autocast), configs,
                          a.rounds * a.steps, a.steps, cuda)
    rows = [_row(name, predict(profile, configs[name]), measured, samples, budgets, cuda) for name in configs]
    title = (f"{a.flavor}, {batch} x {seq} tokens, {precision}, {device.type}"
             + (f" ({torch.cuda.get_device_name(device)})" if cuda else ""))
    png = None
    if a.png:
        atomic_write_bytes(a.png, _chart(rows, title))
        png = a.png
    return {
        "benchmark": "memory",
        "model": a.flavor,
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "precision": precision,
        "batch": batch,
        "seq_len": seq,
        "threads": torch.get_num_threads() if not cuda else None,
        **_summary(rows, cuda, skipped),
        "analytic_vs_measured_block_keep_bytes":
            analytic.blocks[0]["keep"].saved_bytes / profile.blocks[0]["keep"].saved_bytes,
        "profile": profile.to_dict(),
        "png": png,
    }


def _parse(argv: list[str], flavors: list[str]) -> tuple[argparse.Namespace, list[float]]:
    """The benchmark's flags, checked; and the plan budgets as fractions of keep's activation memory."""
    p = argparse.ArgumentParser(prog="steward bench memory")
    p.add_argument("--flavor", default="tiny", choices=flavors)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch", type=int, default=0, help="sequences per step (default: 8 on cpu, 8 on cuda)")
    p.add_argument("--seq-len", type=int, default=0, help="tokens per sequence (default: 256 on cpu, 1024 on cuda)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: fp32 on cpu, bf16 autocast on cuda (as the trainer runs one process)")
    p.add_argument("--budgets", default="0.75,0.5,0.35", help="plan budgets, as fractions of keep's activation memory")
    p.add_argument("--steps", type=int, default=4, help="timed steps per configuration and round")
    p.add_argument("--rounds", type=int, default=3, help="rounds (a configuration is timed steps x rounds times)")
    p.add_argument("--threads", type=int, default=0, help="torch threads on the cpu (0: torch's default)")
    p.add_argument("--png", default="memory-bench.png", help="where to write the chart ('' for none)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        raise StewardError("--device: cuda requested but torch sees no CUDA device; use --device cpu")
    try:
        fractions = [float(x) for x in a.budgets.split(",") if x.strip()]
    except ValueError:
        raise StewardError(f"--budgets: a comma-separated list of fractions, got {a.budgets!r}") from None
    if not fractions or not all(0 < f <= 1 for f in fractions):
        raise StewardError(f"--budgets: fractions must be in (0, 1], got {a.budgets!r}")
    return a, fractions


def _time_steps(apply: Callable[[list[str]], None], step: Callable[[], None], configs: dict[str, list[str]],
                cycles: int, steps: int, cuda: bool) -> dict[str, list[float]]:
    """Step times per configuration. One step of each configuration per cycle, in rotating order, so
    that a drift of the machine's load touches every configuration alike; ratios are medians of the
    ratios within a cycle (steps taken seconds apart), times are medians over cycles."""
    names = list(configs)
    samples: dict[str, list[float]] = {name: [] for name in names}
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for c in range(cycles + 1):  # cycle 0 warms every configuration up
        if c % steps == 1 or steps == 1:
            print(f"timing cycle {c}/{cycles}", file=sys.stderr, flush=True)
        order = names[c % len(names):] + names[: c % len(names)]
        for name in order:
            apply(configs[name])
            sync()
            t0 = time.perf_counter()
            step()
            sync()
            if c:
                samples[name].append(time.perf_counter() - t0)
    return samples


def _row(name: str, pred, measured: dict[str, dict[str, Any]], samples: dict[str, list[float]],
         budgets: dict[str, int], cuda: bool) -> dict[str, Any]:
    """One configuration: measured and predicted activation memory, step time, ratios to keep and full."""

    def ratio(base: str) -> float:
        return statistics.median(x / y for x, y in zip(samples[name], samples[base]))

    def ratio_quartiles(base: str) -> list[float]:
        ratios = [x / y for x, y in zip(samples[name], samples[base])]
        return [ratios[0], ratios[0]] if len(ratios) < 2 else statistics.quantiles(ratios, n=4)[::2]

    act = measured[name]["activation_bytes"]
    best = statistics.median(samples[name])
    q1, _, q3 = statistics.quantiles(samples[name], n=4) if len(samples[name]) > 1 else (best, best, best)
    row = {
        "name": name,
        "policies": pred.to_dict()["blocks"],
        "activation_bytes": act,
        "predicted_activation_bytes": pred.activation_peak_bytes,
        "prediction_error": act / pred.activation_peak_bytes - 1,
        "budget_bytes": budgets.get(name),
        "fits_budget": act <= budgets[name] if name in budgets else None,
        "mem_vs_keep": act / measured["keep"]["activation_bytes"],
        "mem_vs_full": act / measured["full"]["activation_bytes"],
        "step_time_s": best,
        "step_times_s": samples[name],
        "time_spread": (q3 - q1) / best,
        "time_vs_keep": ratio("keep"),
        "time_vs_full": ratio("full"),
        # the resolution of the ratio: its quartiles over cycles, and how often this was faster
        "time_vs_full_quartiles": ratio_quartiles("full"),
        "faster_than_full": sum(x < y for x, y in zip(samples[name], samples["full"])) / len(samples[name]),
        "predicted_added_time_s": pred.added_time_s,
    }
    if cuda:
        row.update({k: measured[name][k] for k in ("max_memory_allocated", "allocated_before", "step_excess")})
    return row


def _summary(rows: list[dict[str, Any]], cuda: bool, skipped: list[str]) -> dict[str, Any]:
    """The rows, their table, and the headline figures (the plan at half of keep's memory against full)."""
    half = next((r for r in rows if r["name"] == "plan@0.5"), None)
    return {
        "rows": rows,
        "table": _table(rows, cuda),
        "skipped": skipped,
        "plan_half_fits": half["fits_budget"] if half else None,
        "plan_half_time_vs_full": half["time_vs_full"] if half else None,
        "plan_half_mem_vs_full": half["mem_vs_full"] if half else None,
        "plan_half_time_vs_full_quartiles": half["time_vs_full_quartiles"] if half else None,
        "plan_half_faster_than_full": half["faster_than_full"] if half else None,
        "max_prediction_error": max(abs(r["prediction_error"]) for r in rows),
        "timer_resolution_s": time.get_clock_info("perf_counter").resolution,
        "median_time_spread": statistics.median(r["time_spread"] for r in rows),
    }
