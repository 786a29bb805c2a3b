"""`steward train`: defaults < --config FILE < --section.key VALUE flags."""

from __future__ import annotations

import json
import os


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (with no arguments: the embedded default, a tiny model on the CPU)",
        description="Train a model. Any config key can be set with --section.key VALUE (see `steward config`).",
    )
    p.add_argument("--config", help="TOML config file (for example RUN_DIR/config.toml to repeat a run)")
    p.add_argument(
        "--nproc-per-node", type=int, default=0, metavar="N",
        help="start N local worker processes through torch's elastic launcher",
    )
    p.add_argument("--json", action="store_true", help="print summary.json's content as one JSON object")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args) -> int:
    from steward.config import load_config
    from steward.errors import UserError
    from steward.jobs import WorkersFailed, launch_local, run_training

    if args.nproc_per_node < 0:
        raise UserError("--nproc-per-node must be >= 1")
    if args.nproc_per_node > 1 and "WORLD_SIZE" in os.environ:
        raise UserError("--nproc-per-node inside a torchrun job; drop the flag")
    if args.nproc_per_node > 1:
        try:
            summary = launch_local(args.config, args.overrides, args.nproc_per_node)
        except WorkersFailed as e:
            return e.code if e.code > 0 else 1
    else:
        summary = run_training(load_config(args.config, args.overrides))
    if summary is None or int(os.environ.get("RANK", "0")) != 0:
        return 0
    if args.json:
        print(json.dumps(summary))
    else:
        run_dir = summary["run_dir"]
        def f(x):
            return "n/a" if x is None else f"{x:.4f}"

        first, final = summary.get("first_val_loss"), summary.get("final_val_loss")
        val = f"val loss {f(first)} -> {f(final)}" if first is not None and first != final else f"val loss {f(final)}"
        print(
            f"done: {summary['steps']} steps, loss {f(summary['initial_loss'])} -> {f(summary['final_loss'])}, "
            f"{val}, {summary['tokens_per_s']:.0f} tokens/s"
        )
        print(f"run directory: {run_dir}  (config.toml, metrics.jsonl, summary.json, checkpoints/)")
    return 0
