"""The trainer's link to governance: records the run in the audit log and passes its policy gates.

The trainer constructs GovernanceCallback(cfg) and calls the rank-0 hooks on rank 0 only; a
denied gate (or a governance set-up that cannot work: bad key, unreachable store) raises
StopTraining from on_train_start/on_data/on_checkpoint, which the trainer broadcasts before any
training step. What it reads from the trainer: cfg, run_dir, env, config_hash (and rank on the
every-rank hooks), resume_check (a resume's allowed config changes) when present; at the end,
trainer.data.datasets() when present, for the records a stream read.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any

from steward.train.callbacks import Callback, StopTraining

if TYPE_CHECKING:
    from steward.config import JobConfig
    from steward.governance import RunGovernance
    from steward.train.trainer import Trainer


class GovernanceCallback(Callback):
    def __init__(self, cfg: JobConfig):
        self.cfg = cfg
        self.gov: RunGovernance | None = None
        self.stopped = False

    @property
    def enabled(self) -> bool:
        return bool(self.cfg.governance.enabled)

    def _stop(self, e: Exception) -> StopTraining:
        self.stopped = True
        return StopTraining(f"governance: {e}")

    def on_train_start(self, trainer: Trainer) -> None:
        if not self.enabled:
            return
        from steward.governance import GovernanceError, RunGovernance

        try:
            self.gov = RunGovernance(
                self.cfg.governance, trainer.run_dir, dataclasses.asdict(trainer.cfg), trainer.config_hash,
                dict(trainer.env), trainer.cfg.job.name,
            )
            self.gov.start()
            check = getattr(trainer, "resume_check", None)
            if check is not None and check.changes:  # a resume changed keys checkpoint.allow_changes names
                self.gov.config_changed(check.step, check.changes, check.previous_config_sha256)
        except GovernanceError as e:
            raise self._stop(e) from None

    def on_data(self, trainer: Trainer, datasets: list[dict[str, Any]]) -> None:
        if self.gov is None:
            return
        from steward.governance import GovernanceError

        try:
            self.gov.ingest(datasets)
        except GovernanceError as e:
            raise self._stop(e) from None

    def on_eval(self, trainer: Trainer, step: int, metrics: dict[str, Any]) -> None:
        if self.gov is not None and trainer.rank == 0:
            self.gov.evaluation(step, metrics)

    def on_step_end(self, trainer: Trainer, step: int, metrics: dict[str, Any]) -> None:
        if self.gov is not None and trainer.rank == 0:
            self.gov.monitor(step, metrics)

    def on_checkpoint(self, trainer: Trainer, step: int, path: str, manifest: dict[str, Any]) -> None:
        if self.gov is None:
            return
        from steward.governance import GovernanceError

        try:
            self.gov.checkpoint(step, path, manifest)
        except GovernanceError as e:
            raise self._stop(e) from None

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        if self.gov is None:
            return
        data = getattr(trainer, "data", None)  # streams: what was actually read, now that training is over
        final = data.datasets() if data is not None and hasattr(data, "datasets") else None
        try:
            self.gov.finish(summary, final)
        finally:
            self.gov.close()

    def on_train_failed(self, trainer: Trainer, error: BaseException) -> None:
        if self.gov is None or self.gov.closed:
            return
        try:
            self.gov.fail(error)
        except Exception as e:  # never hide the run's own error behind a governance one
            print(f"steward governance: could not record run.failed: {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            self.gov.close()
