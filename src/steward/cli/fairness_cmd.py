"""`steward fairness eval RUN_DIR --data ...`: group fairness of a trained classifier, with tables and a chart.
`steward fairness domains RUN_DIR`: the same per domain (the test bed's sources) and its spread across them."""

from __future__ import annotations

import json
import math
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("fairness", help="group fairness of a classify run: AUC gaps per family and subgroup")
    fsub = p.add_subparsers(dest="fairness_command", metavar="SUBCOMMAND")
    e = fsub.add_parser("eval", help="evaluate a run on an identity set; write tables and a PNG chart")
    e.add_argument("run_dir", help="folder of a finished train.task = classify run")
    e.add_argument("--data", default="madlibs",
                   help="'madlibs' (the balanced evaluation split) or a .csv/.parquet/dataset folder in the "
                        "Jigsaw identities layout")
    e.add_argument("--before", help="another run (e.g. without the adversary) to show side by side as 'before'")
    e.add_argument("--size", type=int, default=3000, help="sentences generated for --data madlibs")
    e.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the intervals (0: none)")
    e.add_argument("--out", help="output folder (default RUN_DIR/fairness/eval); per-example scores go to its "
                   "predictions.csv (predictions-before.csv for --before)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=run_eval)
    d = fsub.add_parser("domains", help="fairness per domain: each test-bed source's balanced split, the spread "
                        "across domains, the adversary's effect per domain")
    d.add_argument("run_dir", help="folder of a finished train.task = classify run")
    d.add_argument("--sources", default="all",
                   help="test-bed sources (steward.fairness.testbed), comma-separated, or 'all'")
    d.add_argument("--before", help="the same task trained without the adversary: its gaps and the effect per domain")
    d.add_argument("--size", type=int, default=2000, help="balanced test rows generated per source")
    d.add_argument("--seed", type=int, default=0, help="seed of the generated test rows")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.set_defaults(func=run_domains)
    p.set_defaults(func=lambda args: p.print_help() or 0)


def run_eval(args) -> int:
    from steward.classify.evaluate import family_rows, write_outputs
    from steward.errors import UserError
    from steward.fairness.metrics import FairnessError
    from steward.jobs import evaluate_run

    if args.size < 2 or args.bootstrap < 0:
        raise UserError("--size must be >= 2 and --bootstrap >= 0")
    out = Path(args.out) if args.out else Path(args.run_dir) / "fairness" / "eval"
    runs = {"before": args.before, "after": args.run_dir} if args.before else {"run": args.run_dir}
    scored = {label: out / ("predictions-before.csv" if label == "before" else "predictions.csv") for label in runs}
    try:
        reports = {label: evaluate_run(run_dir, args.data, size=args.size, bootstrap=args.bootstrap,
                                       predictions=scored[label]) for label, run_dir in runs.items()}
    except FairnessError as e:
        raise UserError(str(e)) from None
    files = write_outputs(out, reports)
    files.update({path.name: str(path) for path in scored.values()})
    rows = family_rows(reports)
    if args.json:
        print(json.dumps({"families": rows, "files": files,
                          "overall_auc": {k: r["overall_auc"] for k, r in reports.items()},
                          "final_score": {k: r["final_score"] for k, r in reports.items()}}))
        return 0
    print(f"{'run':<7} {'family':<20} {'mean|gap|':>9} {'95% CI':>17} {'DP diff':>8} {'EO diff':>8} {'AUC':>6}")
    for r in rows:
        ci = "" if math.isnan(r["ci_low"]) else f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        print(f"{r['run']:<7} {r['family']:<20} {r['mean_abs_gap']:>9.4f} {ci:>17} "
              f"{r['demographic_parity_difference']:>8.3f} {r['equalized_odds_difference']:>8.3f} {r['overall_auc']:>6.3f}")
    print("wrote " + ", ".join(files.values()))
    return 0


def run_domains(args) -> int:
    from steward.errors import UserError
    from steward.fairness.metrics import FairnessError
    from steward.fairness.testbed import SOURCES
    from steward.jobs import fairness_domains

    if args.size < 2:
        raise UserError("--size must be >= 2")
    sources = list(SOURCES) if args.sources == "all" else [x.strip() for x in args.sources.split(",")]
    try:
        out = fairness_domains(args.run_dir, sources, before=args.before, size=args.size, seed=args.seed)
    except FairnessError as e:
        raise UserError(str(e)) from None
    if args.json:
        print(json.dumps(out))
        return 0
    families = list(next(iter(out["after"]["domains"].values()))["mean_abs_gap"])
    print(f"mean |gap| per domain{' (after - before: the adversary' + chr(39) + 's effect)' if args.before else ''}")
    print(f"{'domain':<10} {'AUC':>6} " + " ".join(f"{f:>24}" for f in families))
    for name, d in out["after"]["domains"].items():
        cells = [f"{d['mean_abs_gap'][f]:.4f}" + (f" ({out['adversary_effect'][name][f]:+.4f})" if args.before else "")
                 for f in families]
        print(f"{name:<10} {d['overall_auc']:>6.3f} " + " ".join(f"{c:>24}" for c in cells))
    print(f"{'spread':<10} {'':>6} " + " ".join(f"{out['after']['spread'][f]['spread']:>24.4f}" for f in families))
    print(f"wrote {args.run_dir}/fairness/domains.json")
    return 0
