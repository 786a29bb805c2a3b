"""The window monitor: batches in, per-window drift statistics and alarms out.

A window is `window` consecutive batches. The first `reference_windows` windows are the reference:
when they are complete every enabled detector is calibrated on them (steward.drift.detectors), and
from then on each completed window is scored by each detector. The units each detector sees:

- `tokens`: each row of a batch (its unigram counts);
- `embedding`: each row's pooled representation (the model's final hidden state, averaged over
  positions), when the caller has one;
- `loss`: each batch's mean loss (the window's value is the mean over its batches).

The monitor's `alpha` is its false-alarm rate per window; each of k detectors gets alpha / k
(Bonferroni), so a window of reference data raises any alarm with probability at most alpha.

After an alarm the monitor starts a new reference with the next window: it learns the new regime
(reference_windows windows, during which it does not test) and then watches for the next change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from steward.drift.detectors import EmbeddingMMD, LossPageHinkley, Score, TokenJS, token_counts

DETECTORS = ("tokens", "embedding", "loss")


@dataclass
class WindowResult:
    """One scored window: its index (from 0, over the whole stream), the batches seen so far, and each
    detector's score; `alarm` when any crossed its threshold."""

    index: int
    batches: int
    scores: dict[str, Score]
    alarm: bool
    seconds: float
    """Time spent scoring this window (calibration excluded)."""

    def figures(self) -> dict[str, Any]:
        """What metrics.jsonl gets: drift_<detector> (the statistic) and drift_<detector>_threshold."""
        out: dict[str, Any] = {"drift_window": self.index}
        for name, s in self.scores.items():
            out[f"drift_{name}"] = s.statistic
            out[f"drift_{name}_threshold"] = s.threshold
        if self.alarm:
            out["drift_alarm"] = [n for n, s in self.scores.items() if s.alarm]
        return out


@dataclass
class _Window:
    tokens: list[np.ndarray] = field(default_factory=list)
    reps: list[np.ndarray] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


class WindowMonitor:
    def __init__(self, detectors: tuple[str, ...] | list[str], window: int, reference_windows: int, alpha: float,
                 vocab_size: int, seed: int = 0) -> None:
        unknown = [d for d in detectors if d not in DETECTORS]
        if unknown or not detectors:
            raise ValueError(f"drift.detectors: {','.join(detectors)!r}: choose from {', '.join(DETECTORS)}")
        self.detectors = tuple(detectors)
        self.window, self.reference_windows = window, reference_windows
        self.alpha, self.vocab_size, self.seed = alpha, vocab_size, seed
        self.per_detector_alpha = alpha / len(self.detectors)
        self.batches = 0
        self.windows = 0
        self.calibrations: list[dict[str, Any]] = []
        self._current = _Window()
        self._reference: list[_Window] = []
        self._fitted: dict[str, Any] = {}

    @property
    def needs_embeddings(self) -> bool:
        return "embedding" in self.detectors

    @property
    def ready(self) -> bool:
        return bool(self._fitted)

    def add(self, tokens: np.ndarray | None, loss: float | None, reps: np.ndarray | None = None) -> WindowResult | None:
        """Add one batch (token rows [rows, T], its mean loss, pooled representations [rows, dim]); the
        completed window's result when this batch completes a scored window, else None."""
        w = self._current
        if "tokens" in self.detectors:
            w.tokens.append(token_counts(tokens, self.vocab_size))
        if "embedding" in self.detectors:
            if reps is None:
                raise ValueError("the embedding detector needs the model's pooled representations")
            w.reps.append(np.asarray(reps, dtype=np.float64))
        if "loss" in self.detectors:
            w.losses.append(float(loss))
        self.batches += 1
        if len(w.losses or w.tokens or w.reps) < self.window:
            return None
        self._current = _Window()
        index = self.windows
        self.windows += 1
        if not self._fitted:
            self._reference.append(w)
            if len(self._reference) == self.reference_windows:
                self._calibrate()
            return None
        return self._score(index, w)

    def _calibrate(self) -> None:
        t0 = time.perf_counter()
        ref, a, s = self._reference, self.per_detector_alpha, self.seed + len(self.calibrations)
        rows = sum(len(x) for x in ref[0].tokens or ref[0].reps)  # units in one window
        if "tokens" in self.detectors:
            self._fitted["tokens"] = TokenJS(a, seed=s).fit(np.concatenate([x for w in ref for x in w.tokens]), rows)
        if "embedding" in self.detectors:
            self._fitted["embedding"] = EmbeddingMMD(a, seed=s).fit(np.concatenate([x for w in ref for x in w.reps]),
                                                                     rows)
        if "loss" in self.detectors:
            self._fitted["loss"] = LossPageHinkley(a, seed=s).fit(np.array([x for w in ref for x in w.losses]),
                                                                  self.window)
        self.calibrations.append({"at_window": self.windows, "at_batch": self.batches,
                                  "seconds": time.perf_counter() - t0,
                                  "thresholds": {k: d.threshold for k, d in self._fitted.items()}})
        self._reference = []

    def _score(self, index: int, w: _Window) -> WindowResult:
        t0 = time.perf_counter()
        scores = {}
        for name, det in self._fitted.items():
            if name == "tokens":
                scores[name] = det.score(np.concatenate(w.tokens))
            elif name == "embedding":
                scores[name] = det.score(np.concatenate(w.reps))
            else:
                scores[name] = det.score(float(np.mean(w.losses)))
        alarm = any(s.alarm for s in scores.values())
        if alarm:
            self._fitted = {}  # learn the new regime from the next windows
        return WindowResult(index, self.batches, scores, alarm, time.perf_counter() - t0)
