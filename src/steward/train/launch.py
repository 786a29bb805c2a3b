"""Run training in this process, or start N local workers through torch's elastic launcher."""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

from steward.config import JobConfig, load_config
from steward.errors import StewardError


def run_training(cfg: JobConfig) -> dict[str, Any]:
    """Train in this process (one of torchrun's or launch_local's workers, or alone)."""
    from steward.train.distributed import shutdown
    from steward.train.trainer import Trainer

    if cfg.train.task == "classify":
        from steward.train.classify import ClassifyTrainer

        trainer: Trainer = ClassifyTrainer(cfg)
    else:
        trainer = Trainer(cfg)
    summary = trainer.run()
    # after success only (as torchtitan's entry point): after a failure the error ends the process,
    # and a destroy could wait on peers still inside a collective
    shutdown(trainer.dist)
    return summary


def _worker(config_path: str | None, overrides: list[str]) -> dict[str, Any] | None:
    """Entry point of each local worker (spawned; must be importable)."""
    try:
        summary = run_training(load_config(config_path, overrides))
    except StewardError as e:
        if os.environ.get("RANK", "0") == "0":
            print(f"steward train: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    return summary if os.environ.get("RANK", "0") == "0" else None


def launch_local(config_path: str | None, overrides: list[str], nproc: int) -> dict[str, Any] | None:
    """Start `nproc` workers on this host (a c10d rendezvous on loopback); rank 0's summary or None."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from steward.train.checks import check_job

    check_job(load_config(config_path, overrides), nproc)  # fail here, in one line, before any worker starts
    lc = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"steward-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        monitor_interval=0.2,
        start_method="spawn",
    )
    try:
        results = elastic_launch(lc, _worker)(config_path, overrides)
    except ChildFailedError as e:
        codes = {f.exitcode for f in e.failures.values()}
        raise WorkersFailed(max(codes) if codes else 1) from None
    return results.get(0)


class WorkersFailed(Exception):
    """A local worker exited non-zero; it has printed its own reason."""

    def __init__(self, code: int):
        super().__init__(f"a worker exited with code {code}")
        self.code = code
