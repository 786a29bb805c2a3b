"""`steward eval RUN [RUN...] --data SPEC[,SPEC...]`: each run's loss and perplexity on each data source's
held-out windows; with several runs, the matrix training domain x evaluation domain. Written to each
run's RUN_DIR/eval/domains.json (the report shows it)."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("eval", help="loss and perplexity of trained runs per data domain (cross-domain matrix)")
    p.add_argument("run_dirs", nargs="+", metavar="RUN", help="`steward train` run directories (language models)")
    p.add_argument("--data", required=True,
                   help="data sources, comma-separated: anything data.source accepts (stdlib-docs, manpages, a "
                        "text/jsonl/parquet file or folder, a preset, hf:<id>); further --data.* flags apply to each")
    p.add_argument("--max-windows", type=int, default=64,
                   help="score at most this many held-out windows of train.seq_len tokens per domain (0: all)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args) -> int:
    import torch

    from steward.errors import UserError
    from steward.jobs import evaluate_domains

    specs = [s.strip() for s in args.data.split(",")]
    if not all(specs):
        raise UserError(f"--data: {args.data!r} has an empty entry; give sources separated by commas")
    if args.max_windows < 0 or args.threads < 1:
        raise UserError("--max-windows must be >= 0 and --threads >= 1")
    bad = [o for o in args.overrides if o.startswith("--") and not o.startswith("--data.")]
    if bad:
        raise UserError(f"unrecognized arguments: {' '.join(bad)} (only --data.* settings apply to eval)")
    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        result = evaluate_domains(args.run_dirs, specs, max_windows=args.max_windows, overrides=args.overrides)
    finally:
        torch.set_num_threads(before)
    if args.json:
        print(json.dumps(result))
        return 0
    print("loss (perplexity) per evaluation domain; rows: trained on")
    width = max(12, *(len(s) for s in specs))
    print(f"{'run':<28} {'trained on':<{width}} " + " ".join(f"{s:>{width + 10}}" for s in specs))
    for row in result["runs"]:
        cells = [f"{d['loss']:.4f} ({d['perplexity']:.2f})" for d in row["domains"].values()]
        print(f"{row['run_dir'][-28:]:<28} {row['trained_on'][-width:]:<{width}} "
              + " ".join(f"{c:>{width + 10}}" for c in cells))
    print("wrote " + ", ".join(f"{r['run_dir']}/eval/domains.json" for r in result["runs"]))
    return 0
