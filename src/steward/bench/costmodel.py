"""`steward bench costmodel`: the cost model against the published runs of
`steward/planning/published_runs.toml`, each at its published layout (the path of `steward plan
--layout`).

The model's constants (`planning.kernels.Constants`) are fitted to this corpus, so the bench reports two
sets of errors: leave-one-source-out (each source's rows predicted by constants fitted on the other
sources only: out of sample, the figures to quote) and in-sample (the constants fitted on every source,
`kernels.FITTED`, which `steward plan` and `steward simulate` use). `--chart FILE.png` draws predicted
against published for both (matplotlib). Rows whose source measured the peak memory per GPU
(`measured_memory_gib`) also compare the memory model with it (`memory_check`; `memory` in --json).

`published_runs_fresh.toml` (`published.FRESH`) holds further runs from sources outside the corpus,
collected by an author who had not seen the model's predictions, after the model's structure and constants
were fixed: they are predicted once with the shipped constants (`fresh` in --json), never fitted to and
never used to choose the structure. Those are the out-of-sample figures that saw neither the fit nor the
person shaping the model.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from steward.bench import register


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean |error|, max |error| and mean signed error over rows with an 'error' (a fraction)."""
    errors = [r["error"] for r in rows]
    if not errors:
        return {"mean_abs_error": 0.0, "max_abs_error": 0.0, "mean_signed_error": 0.0}
    return {"mean_abs_error": sum(abs(e) for e in errors) / len(errors),
            "max_abs_error": max(abs(e) for e in errors),
            "mean_signed_error": sum(errors) / len(errors)}


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    sources = sorted({r["source"] for r in rows})
    return {"runs": len(rows), "sources": len(sources), **summarize(rows),
            "by_source": {s: {"runs": sum(r["source"] == s for r in rows),
                              **summarize([r for r in rows if r["source"] == s])} for s in sources}}


def evaluate_corpus(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every run predicted with the cost model's constants as shipped (`kernels.FITTED`)."""
    from steward.planning.published import predict_run

    rows = [predict_run(run) for run in runs]
    return {**_summary(rows), "rows": rows}


def loso_corpus(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Leave-one-source-out errors, with the constants each fold fitted."""
    from steward.planning.costfit import band, cases, loso

    rows, constants = loso(cases(runs))
    b = band(rows)
    return {**_summary(rows), "rows": rows, "constants_by_held_out_source": constants,
            "band": {"lo": b.lo, "hi": b.hi, "coverage": b.coverage, "runs": b.runs}}


MEMORY_TOLERANCE = 0.20
"""The memory comparison counts the rows whose |predicted / measured - 1| is within this."""


def memory_check(in_sample: dict[str, Any]) -> dict[str, Any]:
    """The memory model (`cost.device_memory`, as `steward plan` evaluates each layout; memory is not
    fitted) against the peak memory per GPU the sources measured: every row with `measured_memory_gib`,
    error = predicted / measured - 1, its range and how many are within `MEMORY_TOLERANCE`."""
    rows = [{k: r[k] for k in ("id", "source", "measured_memory_gib", "predicted_memory_gib", "memory_error")}
            for r in in_sample["rows"] if "measured_memory_gib" in r]
    errors = [r["memory_error"] for r in rows]
    return {"runs": len(rows), "min_error": min(errors, default=0.0), "max_error": max(errors, default=0.0),
            "mean_abs_error": sum(abs(e) for e in errors) / len(errors) if errors else 0.0,
            "tolerance": MEMORY_TOLERANCE, "within_tolerance": sum(abs(e) <= MEMORY_TOLERANCE for e in errors),
            "rows": rows}


def format_memory(memory: dict[str, Any]) -> list[str]:
    lines = [f"{'run (measured peak memory)':<42} {'source':<14} {'measured':>9} {'predicted':>10} {'error':>8}"]
    for r in memory["rows"]:
        lines.append(f"{r['id']:<42} {r['source']:<14} {r['measured_memory_gib']:>5.1f} GiB "
                     f"{r['predicted_memory_gib']:>6.2f} GiB {r['memory_error']:>+8.1%}")
    lines.append(f"memory model vs measured peak memory: {memory['runs']} runs, error {memory['min_error']:+.1%} "
                 f"to {memory['max_error']:+.1%}, mean |error| {memory['mean_abs_error']:.1%}, within "
                 f"{memory['tolerance']:.0%} on {memory['within_tolerance']} of {memory['runs']}")
    return lines


def format_rows(loso_result: dict[str, Any], in_sample: dict[str, Any]) -> list[str]:
    fits = {r["id"]: r["fits"] for r in in_sample["rows"]}
    ins = {r["id"]: r for r in in_sample["rows"]}
    lines = [f"{'run':<42} {'source':<14} {'metric':<20} {'published':>10} {'LOSO pred':>10} {'LOSO err':>9} "
             f"{'in-sample':>10}  fits"]
    for r in loso_result["rows"]:
        lines.append(f"{r['id']:<42} {r['source']:<14} {r['metric']:<20} {r['published']:>10.4g} "
                     f"{r['predicted']:>10.4g} {r['error']:>+9.1%} {ins[r['id']]['error']:>+10.1%}  "
                     f"{'yes' if fits[r['id']] else 'NO'}")
    for label, res in (("leave-one-source-out", loso_result), ("in-sample (fitted on all sources)", in_sample)):
        lines.append(f"{label}: {res['runs']} runs, {res['sources']} sources: mean |error| "
                     f"{res['mean_abs_error']:.1%}, max |error| {res['max_abs_error']:.1%}, "
                     f"mean signed error {res['mean_signed_error']:+.1%}")
    lines.append(f"{'source':<16} {'runs':>4} {'LOSO mean|err|':>15} {'max|err|':>9} {'signed':>8}")
    for s, v in loso_result["by_source"].items():
        lines.append(f"{s:<16} {v['runs']:>4} {v['mean_abs_error']:>15.1%} {v['max_abs_error']:>9.1%} "
                     f"{v['mean_signed_error']:>+8.1%}")
    b = loso_result["band"]
    lines.append(f"error band (central {b['coverage']:.0%} of the leave-one-source-out errors): "
                 f"lo {b['lo']:+.4f}, hi {b['hi']:+.4f}")
    lines.append(f"layouts that ran but do not fit the memory model: {sum(not f for f in fits.values())} of "
                 f"{len(fits)}")
    return lines


def format_fresh(fresh: dict[str, Any]) -> list[str]:
    lines = [f"fresh runs (sources outside the corpus, collected blind, never fitted to; shipped constants): "
             f"{fresh['runs']} runs, {fresh['sources']} sources"]
    for r in fresh["rows"]:
        lines.append(f"{r['id']:<42} {r['source']:<14} {r['metric']:<20} {r['published']:>10.4g} "
                     f"{r['predicted']:>10.4g} {r['error']:>+9.1%}  {'yes' if r['fits'] else 'NO'}")
    if fresh["runs"]:
        lines.append(f"fresh: mean |error| {fresh['mean_abs_error']:.1%}, max |error| {fresh['max_abs_error']:.1%}, "
                     f"mean signed error {fresh['mean_signed_error']:+.1%}")
    return lines


def chart_png(loso_result: dict[str, Any], in_sample: dict[str, Any], path: str) -> str:
    """Predicted / published per run, leave-one-source-out and in-sample; returns what was written."""
    try:
        import matplotlib
    except ImportError:
        return "no chart: matplotlib is not installed (pip install matplotlib)"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    sources = sorted(loso_result["by_source"])
    for i, s in enumerate(sources):
        rows = [r for r in loso_result["rows"] if r["source"] == s]
        ax.scatter([i + 1] * len(rows), [1 + r["error"] for r in rows], label=f"{s} (LOSO)", marker="o")
        ins = [r for r in in_sample["rows"] if r["source"] == s]
        ax.scatter([i + 1.25] * len(ins), [1 + r["error"] for r in ins], marker="x", color="grey")
    ax.axhline(1.0, color="black", lw=0.8)
    for y in (0.85, 1.15):
        ax.axhline(y, color="red", lw=0.6, ls="--")
    ax.set_xticks(range(1, len(sources) + 1), sources, rotation=30, ha="right")
    ax.set_ylabel("predicted / published (o: leave-one-source-out, x: in-sample)")
    ax.set_yscale("log")
    ax.set_title("steward bench costmodel: cost model vs published runs (dashed: +-15%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"chart: {path}"


@register("costmodel", "the cost model vs published runs: leave-one-source-out and in-sample errors per row")
def bench_costmodel(argv: list[str]) -> dict[str, Any]:
    from steward.planning.published import FRESH, load_runs

    p = argparse.ArgumentParser(prog="steward bench costmodel")
    p.add_argument("--chart", default="", help="write predicted vs published to this PNG file")
    args, _ = p.parse_known_args(argv)
    runs = load_runs()
    in_sample = evaluate_corpus(runs)
    out = loso_corpus(runs)
    memory = memory_check(in_sample)
    fresh = evaluate_corpus(load_runs(FRESH)) if FRESH.exists() else evaluate_corpus([])
    lines = format_rows(out, in_sample) + format_memory(memory) + format_fresh(fresh)
    if args.chart:
        lines.append(chart_png(out, in_sample, args.chart))
    print("\n".join(lines), file=sys.stderr)
    return {"leave_one_source_out": out, "in_sample": in_sample, "memory": memory, "fresh": fresh}
