"""What governance adds to rank 0's max RSS in `steward bench peers` (issue 21, "at no more memory"): the
breakdown quoted in the README's peers section. Not a test; a measurement.

    PYTHONPATH=src python benchmarks/governance_rss.py [--steps 12] [config overrides]

1. One run of the peers' Steward DDP job (2 gloo ranks, `steward bench peers`' launcher and overrides):
   each rank's VmHWM just before and just after each of the trainer's rank-0 hooks (where governance
   works: on_train_start loads its libraries, policy, signing key and audit stores; on rank 1 each hook
   is a broadcast only) and its max RSS at the end, as the benchmark reads it.
2. In a fresh process, on top of what every rank imports (torch, the trainer): VmRSS after each import
   and each step governance takes in a run, in the order the run takes them (anonymous and file-backed
   pages apart), with a temporary workspace (key, audit stores).
The workspace of part 1 is the default one ($STEWARD_WORKSPACE, else ~/.steward), as in the benchmark.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MIB = 2**20


def vm_status() -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon and RssFile of this process in MiB."""
    keys = ("VmRSS", "VmHWM", "RssAnon", "RssFile")
    with open("/proc/self/status") as f:
        return {k: int(v.split()[0]) / 1024 for k, v in (line.split(":", 1) for line in f) if k in keys}


# ---- part 1: the run ------------------------------------------------------------------------------

def worker(spec: str) -> int:
    """One rank of the peers' worker, with VmHWM recorded around every rank-0 hook."""
    import steward.bench.peers_systems as ps
    from steward.train.trainer import Trainer

    marks: list[tuple[str, float, float]] = []  # (hook, VmHWM before, after)
    rank0_hook = Trainer._rank0_hook

    def hook(self, name, *args):
        before = vm_status()["VmHWM"]
        rank0_hook(self, name, *args)
        marks.append((name, before, vm_status()["VmHWM"]))

    Trainer._rank0_hook = hook
    run_system = ps.run_system

    def measured(name, cfg):
        return {**run_system(name, cfg), "hwm_mib": marks}

    ps.run_system = measured
    return ps.main([spec])


def run_part1(argv: list[str]) -> list[dict]:
    from steward.bench.peers import REFERENCE, SYSTEMS, Launcher, job_overrides, launch, parse_args

    args, overrides = parse_args(["--systems", REFERENCE, *argv])
    system = next(s for s in SYSTEMS if s.name == REFERENCE)
    with tempfile.TemporaryDirectory() as tmp:
        ranks, error = launch(system, job_overrides(args, overrides, Launcher()), Path(tmp) / "run", args.timeout,
                              worker=(__file__, "--worker"))
    if ranks is None:
        sys.exit(f"governance_rss: the run failed: {error}")
    return ranks


# ---- part 2: the imports and steps, one process ------------------------------------------------------

def breakdown() -> list[tuple[str, dict[str, float]]]:
    """(part, VmRSS/RssAnon/RssFile increase in MiB) in the order a run takes them; the first row is the
    base every rank has."""
    rows: list[tuple[str, dict[str, float]]] = []
    last = {k: 0.0 for k in vm_status()}

    def step(name: str) -> None:
        now = vm_status()
        rows.append((name, {k: now[k] - last[k] for k in now}))
        last.update(now)

    import steward.bench.peers_systems  # noqa: F401  what every rank imports
    import steward.train.trainer  # noqa: F401
    step("base: torch, steward.train.trainer (every rank)")
    import sqlite3  # noqa: F401
    step("sqlite3 (standard library)")
    import sqlalchemy  # noqa: F401
    step("SQLAlchemy (the audit store)")
    import cryptography.exceptions  # noqa: F401
    from cryptography.hazmat.primitives import serialization  # noqa: F401
    from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: F401
    step("cryptography: Ed25519 (signatures)")
    import lark  # noqa: F401
    step("lark (+ regex): CEL's parser generator")
    import celpy  # noqa: F401
    step("cel-python (+ pendulum, dateutil, re2)")
    import steward.governance.exports  # noqa: F401
    import steward.governance.risk  # noqa: F401
    import steward.governance.runs  # noqa: F401
    import steward.governance.session  # noqa: F401
    step("steward.governance's own modules")
    _run_governance(step)
    return rows


def _run_governance(step) -> None:
    from steward.config import load_config
    from steward.governance import RunGovernance
    from steward.governance.policy import _environment

    _environment()
    step("CEL parser built (lark LALR tables)")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, ["--job.out", f"{tmp}/run", "--governance.workspace", f"{tmp}/ws"])
        gov = RunGovernance(cfg.governance, f"{tmp}/run", dataclasses.asdict(cfg), "0" * 64, {}, "job")
        step("RunGovernance(): default policy (15 rules), workspace, key")
        Path(f"{tmp}/run").mkdir()
        gov.start()
        step("start(): audit stores, run.started, train.start gate")
        gov.ingest([])
        gov.finish({"final_loss": 1.0, "steps": 1})
        gov.close()
        step("ingest(), finish(): run.finished, signed head, report")


# ---- printing -----------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        return worker(argv[1])
    if argv[:1] == ["--imports"]:
        print(json.dumps(breakdown()))
        return 0
    ranks = run_part1(argv)
    print("1. Steward DDP, 2 ranks: VmHWM (MiB)   rank 0 before -> after      rank 1 before -> after")
    for (name, b0, a0), (_, b1, a1) in zip(ranks[0]["hwm_mib"], ranks[1]["hwm_mib"]):
        print(f"   {name:32s}{b0:10.1f} -> {a0:6.1f} ({a0 - b0:+5.1f}){b1:10.1f} -> {a1:6.1f} ({a1 - b1:+5.1f})")
    rss = [rank["max_rss_bytes"] / MIB for rank in ranks]
    print(f"   {'max RSS at the end':32s}{rss[0]:10.1f}{'':19s}{rss[1]:10.1f}   rank 0 - rank 1: {rss[0] - rss[1]:+.1f}")
    out = subprocess.run([sys.executable, __file__, "--imports"], capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"), check=True).stdout
    rows = json.loads(out.splitlines()[-1])
    print(f"\n2. one process, in a run's order (MiB){'':18s}VmRSS   anon   file")
    for name, d in rows:
        print(f"   {name:54s}{d['VmRSS']:6.1f} {d['RssAnon']:6.1f} {d['RssFile']:6.1f}")
    total = {k: sum(d[k] for _, d in rows[1:]) for k in ("VmRSS", "RssAnon", "RssFile")}
    print(f"   {'governance, all of it':54s}{total['VmRSS']:6.1f} {total['RssAnon']:6.1f} {total['RssFile']:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
