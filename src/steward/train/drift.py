"""The drift monitor of a language-model run (drift.enabled), and the same monitor over held-out windows of
a trained model (`steward drift`, `steward bench drift`).

`DriftCallback` feeds `steward.drift.monitor.WindowMonitor` each optimizer step with rank 0's rows of the
batch (the tokens the trainer just trained on), the step's loss, and, for the `embedding` detector, the
model's final hidden state averaged over positions (a forward hook on the decoder's final norm that
records while the model trains, not during validation). When a window completes it

- adds drift_<detector> (the statistic) and drift_<detector>_threshold to the step's metrics.jsonl
  record, and prints one line on the progress output;
- records `drift.calibrated` (thresholds) and, on an alarm, `drift.alert` audit events through the
  governance callback's run session;
- on an alarm with drift.action = stop, ends the run with a one-line reason. Rank 0 decides; the
  decision is broadcast at the end of every window, so every rank stops at the same step.

The model is built after the callbacks start, so the hook is installed at the first step, and with the
embedding detector the monitor is fed from the second step on (without it, from the first). Its state
is not checkpointed: a resumed run calibrates a new reference.

At the end it writes RUN_DIR/drift/report.json (every window, calibrations, alarms) and puts the
headline figures under summary["drift"].
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from steward.drift.monitor import WindowMonitor, WindowResult
from steward.errors import StewardError
from steward.io import atomic_write_json
from steward.train.callbacks import Callback, StopTraining, governance_session
from steward.train.distributed import broadcast_object
from steward.train.evaluate import window_losses

if TYPE_CHECKING:
    from steward.config import JobConfig
    from steward.train.trainer import Trainer


def final_norm(model: torch.nn.Module) -> torch.nn.Module:
    """The decoder's final norm, through data-parallel and compile wrappers; StewardError when there is none."""
    m = model
    for _ in range(4):
        if hasattr(m, "norm") and isinstance(m.norm, torch.nn.Module):
            return m.norm
        m = getattr(m, "module", None) or getattr(m, "_orig_mod", None)
        if m is None:
            break
    raise StewardError("drift.detectors: 'embedding' needs the decoder's final norm (model.flavor, one pipeline "
                       "stage); use tokens or loss for this model")


class PooledHook:
    """Records the mean over positions of the final norm's output [rows, dim] (float64, CPU) for each
    forward pass while the model is in training mode (`only_training`) or always."""

    def __init__(self, model: torch.nn.Module, only_training: bool = True) -> None:
        self.model, self.only_training = model, only_training
        self.rows: list[np.ndarray] = []
        self.handle = final_norm(model).register_forward_hook(self._record)

    def _record(self, module, args, output) -> None:
        if self.model.training or not self.only_training:
            self.rows.append(output.detach().float().mean(dim=1).cpu().numpy().astype(np.float64))

    def take(self) -> np.ndarray:
        out = np.concatenate(self.rows) if self.rows else np.empty((0, 0))
        self.rows = []
        return out

    def close(self) -> None:
        self.handle.remove()


def monitor_of(cfg: JobConfig, vocab_size: int) -> WindowMonitor:
    d = cfg.drift
    return WindowMonitor(d.detector_list, d.window, d.reference_windows, d.alpha, vocab_size, seed=cfg.train.seed)


class DriftCallback(Callback):
    def __init__(self, cfg: JobConfig) -> None:
        self.cfg = cfg
        self.monitor: WindowMonitor | None = None
        self.hook: PooledHook | None = None
        self.history: list[dict[str, Any]] = []
        self.alarms: list[dict[str, Any]] = []
        self.seconds = 0.0
        """Time spent in this callback (its overhead on the run)."""
        self.fed = 0
        """Steps fed to the monitor (every rank counts them; rank 0 feeds it)."""

    def _start(self, trainer: Trainer) -> None:
        self.monitor = monitor_of(self.cfg, trainer.data.tokenizer.vocab_size)
        if self.monitor.needs_embeddings:
            self.hook = PooledHook(trainer.model)

    def on_step_end(self, trainer: Trainer, step: int, metrics: dict[str, Any]) -> None:
        start = time.perf_counter()
        if self.monitor is None:  # the first step: the model exists now; with embeddings, feed from the next step
            self._start(trainer)
            if self.hook is not None:
                return
        reps = self.hook.take() if self.hook is not None else None
        calibrations = len(self.monitor.calibrations)
        result = None
        if trainer.rank == 0:
            result = self.monitor.add(trainer.last_batch.detach().cpu().numpy(), metrics["loss"], reps)
        self.fed += 1
        decision = None
        if self.fed % self.cfg.drift.window == 0:  # a window may have ended: every rank takes rank 0's decision
            decision = broadcast_object(self._report(trainer, step, metrics, result, calibrations))
        self.seconds += time.perf_counter() - start
        if decision:
            raise StopTraining(decision)

    def _report(self, trainer: Trainer, step: int, metrics: dict[str, Any], result: WindowResult | None,
                calibrations: int) -> str | None:
        """Rank 0: metrics, progress line and audit events of a completed window; the stop reason, if any."""
        if trainer.rank != 0:
            return None
        gov = governance_session(trainer)
        if len(self.monitor.calibrations) > calibrations:
            cal = self.monitor.calibrations[-1]
            trainer.progress.message(f"drift: reference calibrated at step {step} (thresholds "
                                     + ", ".join(f"{k} {v:.4g}" for k, v in cal["thresholds"].items()) + ")")
            if gov is not None:
                gov.record("drift.calibrated", {"step": int(step), **cal})
        if result is None:
            return None
        figures = result.figures()
        metrics.update(figures)
        self.history.append({"step": int(step), **figures})
        if not result.alarm:
            return None
        fired = figures["drift_alarm"]
        reason = (f"drift: window {result.index} (step {step}) departs from the reference on "
                  + ", ".join(f"{n} {result.scores[n].statistic:.4g} > {result.scores[n].threshold:.4g}" for n in fired))
        event = {"step": int(step), "window": result.index, "detectors": fired, "action": self.cfg.drift.action,
                 "alpha": self.cfg.drift.alpha,
                 "statistics": {n: s.statistic for n, s in result.scores.items()},
                 "thresholds": {n: s.threshold for n, s in result.scores.items()}}
        self.alarms.append(event)
        if gov is not None:
            gov.record("drift.alert", event)
        trainer.progress.message(reason)
        return reason if self.cfg.drift.action == "stop" else None

    def summary(self) -> dict[str, Any]:
        d = self.cfg.drift
        return {"detectors": list(d.detector_list), "window": d.window, "reference_windows": d.reference_windows,
                "alpha": d.alpha, "action": d.action, "windows_scored": len(self.history),
                "alarms": len(self.alarms), "first_alarm_step": self.alarms[0]["step"] if self.alarms else None,
                "monitor_seconds": self.seconds}

    def on_summary(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        if self.monitor is None:
            return
        summary["drift"] = self.summary()
        if trainer.rank == 0:
            atomic_write_json(trainer.run_dir / "drift" / "report.json",
                              {**self.summary(), "history": self.history, "alerts": self.alarms,
                               "calibrations": self.monitor.calibrations})

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        if self.hook is not None:
            self.hook.close()

    def on_train_failed(self, trainer: Trainer, error: BaseException) -> None:
        if self.hook is not None:
            self.hook.close()
        if self.monitor is not None and isinstance(error, StopTraining):
            with contextlib.suppress(OSError):
                atomic_write_json(trainer.run_dir / "drift" / "report.json",
                                  {**self.summary(), "history": self.history, "alerts": self.alarms,
                                   "calibrations": self.monitor.calibrations, "stopped": error.reason})


def sequence_features(model: torch.nn.Module, windows: np.ndarray, embeddings: bool,
                      batch_size: int = 16) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-window mean loss (float64) and, with `embeddings`, pooled representations [n, dim] of a trained
    model on `windows` [n, seq_len + 1] (eval mode, CPU)."""
    hook = PooledHook(model, only_training=False) if embeddings else None
    try:
        losses = window_losses(model, windows, batch_size)
        return losses, (hook.take() if hook is not None else None)
    finally:
        if hook is not None:
            hook.close()


def feed_stream(monitor: WindowMonitor, tokens: np.ndarray, losses: np.ndarray, reps: np.ndarray | None,
                batch_rows: int) -> list[WindowResult]:
    """Feed a stream of sequences (token rows, per-row losses, per-row representations) to `monitor` in
    batches of `batch_rows` (a batch's loss: the mean of its rows'); the scored windows' results."""
    results = []
    for i in range(0, len(tokens) - batch_rows + 1, batch_rows):
        r = monitor.add(tokens[i : i + batch_rows], float(losses[i : i + batch_rows].mean()),
                        None if reps is None else reps[i : i + batch_rows])
        if r is not None:
            results.append(r)
    return results
