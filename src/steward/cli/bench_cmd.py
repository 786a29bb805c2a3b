"""`steward bench NAME`: run a benchmark (with its baseline, in the same invocation) and print ratios."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks against baselines, run in the same invocation")
    p.add_argument("name", nargs="?", help="which benchmark (omit to list them)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args) -> int:
    from steward.bench import benchmarks
    from steward.errors import UserError

    table = benchmarks()
    if not args.name:
        for name, (help_text, _) in table.items():
            print(f"{name:<12} {help_text}")
        return 0
    if args.name not in table:
        raise UserError(f"unknown benchmark {args.name!r}; choose one of {', '.join(table)}")
    result = table[args.name][1](args.overrides)
    if args.json:
        print(json.dumps(result))
    else:
        nested = []
        for key, value in result.items():
            if isinstance(value, (dict, list)) and value:
                nested.append(key)  # rows, profiles, per-run records: in --json, not as a Python repr
                continue
            shown = f"{value:.4g}" if isinstance(value, float) else value
            print(f"{key:<22} {shown}")
        if nested:
            print(f"{'(with --json)':<22} {', '.join(nested)}")
    return 0
