"""Trainer callbacks: the extension points (governance, fairness, explanations, drift monitors)
attach here, never by editing the loop.

Hooks marked *rank 0* are called on rank 0 only; the trainer broadcasts a stop request raised
there to every rank. The others run on every rank.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from steward.errors import StewardError

if TYPE_CHECKING:
    from steward.train.trainer import Trainer


class StopTraining(StewardError):
    """Raised by a callback to stop the run before it acts (e.g. a policy denied a stage).

    `reason` is the one-line message the user sees; the run exits non-zero."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Callback:
    """Base class: override what you need. `trainer` exposes cfg, run_dir, rank, world_size,
    env (python, torch, devices, hosts), datasets (fingerprints and descriptions)."""

    def on_train_start(self, trainer: Trainer) -> None:
        """*rank 0*, before the model is built: config resolved, run directory created."""

    def on_data(self, trainer: Trainer, datasets: list[dict[str, Any]]) -> None:
        """*rank 0*, after the datasets are opened and fingerprinted, before step 1."""

    def on_step_end(self, trainer: Trainer, step: int, metrics: dict[str, Any]) -> None:
        """Every rank, after each optimizer step; `metrics` is what metrics.jsonl gets for this
        step: a callback may add its own figures to it (written after all callbacks ran)."""

    def on_eval(self, trainer: Trainer, step: int, metrics: dict[str, Any]) -> None:
        """Every rank, after each validation pass."""

    def on_checkpoint(self, trainer: Trainer, step: int, path: str, manifest: dict[str, Any]) -> None:
        """*rank 0*, after a checkpoint folder is complete and renamed into place."""

    def on_summary(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        """Every rank, before summary.json is written: a callback may add its own figures."""

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        """*rank 0*, after summary.json is written."""

    def on_train_failed(self, trainer: Trainer, error: BaseException) -> None:
        """*rank 0*, when the run stops with an error (including StopTraining)."""


def governance_session(trainer: Trainer):
    """The governance callback's open run session, if the run has one (rank 0 only): where a monitor
    records its audit events."""
    for cb in trainer.callbacks.callbacks:
        gov = getattr(cb, "gov", None)
        if gov is not None and not getattr(gov, "closed", False) and hasattr(gov, "record"):
            return gov
    return None


class CallbackList:
    def __init__(self, callbacks: list[Callback]):
        self.callbacks = list(callbacks)

    def append(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    def __call__(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)
