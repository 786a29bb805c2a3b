"""`steward bench costmodel`: the cost model against the published runs of
`steward/planning/published_runs.toml`, each at its published layout (the path of `steward plan
--layout`). The model has no constants fitted to the corpus, so every row is out of sample; a
leave-one-source-out loop belongs with the first fitted constant.
"""

from __future__ import annotations

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


def evaluate_corpus(runs: list[dict[str, Any]]) -> dict[str, Any]:
    from steward.planning.published import predict_run

    rows = [predict_run(run) for run in runs]
    sources = sorted({r["source"] for r in rows})
    return {"runs": len(rows), "sources": len(sources), **summarize(rows),
            "by_source": {s: summarize([r for r in rows if r["source"] == s]) for s in sources},
            "rows": rows, "fitted": "nothing: the cost model's constants are not fitted to this corpus"}


def format_rows(result: dict[str, Any]) -> list[str]:
    lines = [f"{'run':<38} {'metric':<22} {'published':>10} {'predicted':>10} {'error':>8}  fits"]
    for r in result["rows"]:
        lines.append(f"{r['id']:<38} {r['metric']:<22} {r['published']:>10.4g} {r['predicted']:>10.4g} "
                     f"{r['error']:>+8.1%}  {'yes' if r['fits'] else 'NO'}")
    lines.append(f"{result['runs']} runs, {result['sources']} sources: mean |error| {result['mean_abs_error']:.1%}, "
                 f"max |error| {result['max_abs_error']:.1%}, mean signed error {result['mean_signed_error']:+.1%}")
    return lines


@register("costmodel", "the cost model vs published runs at their published layouts (errors per row)")
def bench_costmodel(argv: list[str]) -> dict[str, Any]:
    from steward.planning.published import load_runs

    result = evaluate_corpus(load_runs())
    print("\n".join(format_rows(result)), file=sys.stderr)
    return result
