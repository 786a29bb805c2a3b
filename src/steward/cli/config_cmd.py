"""`steward config`: every config key with its type, default and doc."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("config", help="list every config key with its type, default and doc")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--config", help="show the values resolved from this TOML file (and any --section.key flags)")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args) -> int:
    from steward.config import describe, load_config, public_dict

    rows = describe()
    if args.config or args.overrides:
        from steward.train.checks import check_job

        cfg = load_config(args.config, args.overrides)
        check_job(cfg)  # show only a config that would run
        resolved = public_dict(cfg)  # a store URL's password is never printed
        for row in rows:
            section, name = row["key"].split(".", 1)
            row["value"] = resolved[section][name]
    if args.json:
        print(json.dumps({"keys": rows}))
        return 0
    width = max(len(r["key"]) for r in rows)
    for r in rows:
        shown = r.get("value", r["default"])
        choices = f" Choices: {', '.join(r['choices'])}." if "choices" in r else ""
        allowed = f" Range: {r['range']}." if "range" in r else ""
        print(f"{r['key']:<{width}}  {r['type']:<5}  = {json.dumps(shown):<14}  {r['doc']}{choices}{allowed}")
    return 0
