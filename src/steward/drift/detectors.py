"""Drift detectors with calibrated false-alarm rates: pure computation on numpy arrays (float64).

Each detector is fitted on a reference (the first windows of a stream) and then scores one window
at a time, returning the window's statistic and whether it crosses the detector's threshold. The
threshold is set from the reference alone so that a window drawn from the reference's distribution
crosses it with probability at most `alpha`:

- `TokenJS` (`tokens`): the Jensen-Shannon divergence (base 2, in [0, 1]) between the unigram token
  distribution of the window and of the reference. Units are sequences: a window holds `n` of them.
- `EmbeddingMMD` (`embedding`): the squared maximum mean discrepancy (biased V-statistic, Gaussian
  kernel, bandwidth by the median heuristic on the reference) between the model's pooled
  representations of the window's sequences and the reference's (Gretton et al., JMLR 2012).
- `LossPageHinkley` (`loss`): Page's (1954) cumulative-sum test for an increase of the mean, run on
  the window's mean loss standardized by the reference; it keeps state across windows and restarts
  after an alarm.

Calibration. For the two-sample detectors the threshold is a permutation quantile: B times, a random
`n` of the reference's `N` units play the window and the other `N - n` the reference, and the
threshold is the ceil((1 - alpha)(B + 1))-th smallest of the B statistics (B >= 1/alpha - 1, so the
quantile exists). A new window is compared with a fixed random `N - n` of the reference units, so
that it is scored exactly as the permutations were (a window of `n` against `N - n` units): under
no drift the window and those units are exchangeable with the reference's own splits. For
Page-Hinkley, null streams are simulated by resampling the reference's per-unit losses into
windows; the threshold is the (1 - alpha) quantile of the statistic over every window of those
streams, so that the share of windows at or above it is at most alpha (an alarm needs one).

Several detectors on one stream share the monitor's alpha (Bonferroni): `monitor_alpha / k` each.

Why not a library. alibi-detect's MMDDrift and its online variants install TensorFlow by default (the
PyTorch backend is an extra) and bring its own preprocessing stack; TorchDrift's KernelMMDDriftDetector
computes a permutation p-value per call (B forward permutations for every window, where a threshold
calibrated once serves a training loop) and has had no release since 2021; River 0.26's PageHinkley takes
a fixed threshold, which is exactly the part to calibrate, and River would add a compiled dependency
for twenty lines. None has a JS-divergence detector on token counts. The three detectors here are
short numpy code with the calibration stated above.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

_CHUNK = 256
"""Permutations computed at once (bounds the memory of a chunk: CHUNK x N, and CHUNK x vocabulary)."""


def permutations_needed(alpha: float) -> int:
    """The fewest permutations B whose (1 - alpha) quantile exists: ceil((1 - alpha)(B + 1)) <= B."""
    return max(1, math.ceil(1.0 / alpha) - 1)


def permutation_threshold(null: np.ndarray, alpha: float) -> float:
    """The ceil((1 - alpha)(B + 1))-th smallest of the B null statistics."""
    b = len(null)
    k = math.ceil((1.0 - alpha) * (b + 1))
    if k > b:
        raise ValueError(f"{b} permutations cannot give a 1 - {alpha:g} quantile; need {permutations_needed(alpha)}")
    return float(np.sort(null)[k - 1])


def js_divergence(p_counts: np.ndarray, q_counts: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (bits) between count vectors, row-wise over the last axis."""
    p = p_counts / p_counts.sum(axis=-1, keepdims=True)
    q = q_counts / q_counts.sum(axis=-1, keepdims=True)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log2(p / m), 0.0)
        kq = np.where(q > 0, q * np.log2(q / m), 0.0)
    return np.maximum(0.5 * (kp.sum(axis=-1) + kq.sum(axis=-1)), 0.0)


def _split_masks(rng: np.random.Generator, n_units: int, n_window: int, count: int) -> np.ndarray:
    """`count` random window masks [count, n_units] with `n_window` True entries each."""
    order = np.argsort(rng.random((count, n_units)), axis=1)[:, :n_window]
    masks = np.zeros((count, n_units), dtype=bool)
    np.put_along_axis(masks, order, True, axis=1)
    return masks


@dataclass
class Score:
    statistic: float
    threshold: float
    alarm: bool


class TwoSampleDetector(ABC):
    """Permutation-calibrated two-sample detector over reference units (subclasses: the statistic)."""

    name = ""

    def __init__(self, alpha: float, permutations: int = 0, seed: int = 0) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        self.alpha = alpha
        self.permutations = max(permutations, permutations_needed(alpha))
        self.seed = seed
        self.threshold = math.nan
        self.null = np.empty(0)

    def fit(self, units: np.ndarray, window: int) -> TwoSampleDetector:
        """Calibrate on the reference `units` [N, ...] for windows of `window` units (N > window)."""
        n_units = len(units)
        if window < 1 or n_units <= window:
            raise ValueError(f"the reference needs more than one window of units: {n_units} units, window {window}")
        rng = np.random.default_rng([self.seed, 0x5D])
        self._prepare(np.asarray(units, dtype=np.float64))
        stats = []
        for start in range(0, self.permutations, _CHUNK):
            masks = _split_masks(rng, n_units, window, min(_CHUNK, self.permutations - start))
            stats.append(self._split_statistics(masks))
        self.null = np.concatenate(stats)
        self.threshold = permutation_threshold(self.null, self.alpha)
        self._keep = ~_split_masks(rng, n_units, window, 1)[0]  # the fixed N - n units windows are compared with
        self._fix_reference(self._keep)
        return self

    def score(self, units: np.ndarray) -> Score:
        stat = float(self._statistic(np.asarray(units, dtype=np.float64)))
        return Score(stat, self.threshold, stat > self.threshold)

    @abstractmethod
    def _prepare(self, units: np.ndarray) -> None: ...

    @abstractmethod
    def _split_statistics(self, masks: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _fix_reference(self, keep: np.ndarray) -> None: ...

    @abstractmethod
    def _statistic(self, units: np.ndarray) -> float: ...


class TokenJS(TwoSampleDetector):
    """Units: per-sequence token count vectors [N, vocab]; see the module docstring."""

    name = "tokens"

    def _prepare(self, units: np.ndarray) -> None:
        self.counts = units
        self.total = units.sum(axis=0)

    def _split_statistics(self, masks: np.ndarray) -> np.ndarray:
        window = masks.astype(np.float64) @ self.counts
        return js_divergence(window, self.total[None, :] - window)

    def _fix_reference(self, keep: np.ndarray) -> None:
        self.reference = self.counts[keep].sum(axis=0)

    def _statistic(self, units: np.ndarray) -> float:
        return float(js_divergence(units.sum(axis=0), self.reference))


def token_counts(sequences: np.ndarray, vocab_size: int) -> np.ndarray:
    """Per-sequence unigram counts [rows, vocab_size] (float64) of integer token rows."""
    rows = np.asarray(sequences, dtype=np.int64)
    offsets = (np.arange(len(rows)) * vocab_size)[:, None]
    flat = np.bincount((rows + offsets).ravel(), minlength=len(rows) * vocab_size)
    return flat.reshape(len(rows), vocab_size).astype(np.float64)


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


class EmbeddingMMD(TwoSampleDetector):
    """Units: pooled representation vectors [N, dim]; see the module docstring."""

    name = "embedding"

    def _prepare(self, units: np.ndarray) -> None:
        self.x = units
        d = _sq_dists(units, units)
        off = d[~np.eye(len(units), dtype=bool)]
        median = float(np.median(off)) if off.size else 1.0
        self.gamma = 1.0 / (2.0 * (median if median > 0 else 1.0))
        self.k = np.exp(-self.gamma * d)

    def _split_statistics(self, masks: np.ndarray) -> np.ndarray:
        n = masks.sum(axis=1, keepdims=True)
        m = masks.shape[1] - n
        a = np.where(masks, 1.0 / n, -1.0 / m)  # MMD^2 (biased) = a^T K a
        return np.einsum("bi,ij,bj->b", a, self.k, a, optimize=True)

    def _fix_reference(self, keep: np.ndarray) -> None:
        self.ref = self.x[keep]
        self.ref_mean = float(self.k[np.ix_(keep, keep)].mean())

    def _statistic(self, units: np.ndarray) -> float:
        kyy = np.exp(-self.gamma * _sq_dists(units, units)).mean()
        kyx = np.exp(-self.gamma * _sq_dists(units, self.ref)).mean()
        return float(kyy + self.ref_mean - 2.0 * kyx)


class LossPageHinkley:
    """Page-Hinkley for an increase of the window's mean loss; see the module docstring."""

    name = "loss"

    def __init__(self, alpha: float, delta: float = 0.5, streams: int = 20, stream_windows: int = 0,
                 seed: int = 0) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        self.alpha, self.delta, self.streams, self.seed = alpha, delta, streams, seed
        self.stream_windows = stream_windows or max(200, math.ceil(20.0 / alpha / streams))
        self.threshold = math.nan
        self.reset()

    def reset(self) -> None:
        self.count, self.mean, self.cum, self.low = 0, 0.0, 0.0, 0.0

    def fit(self, losses: np.ndarray, window: int) -> LossPageHinkley:
        """Calibrate on the reference's per-unit losses (a window averages `window` of them)."""
        losses = np.asarray(losses, dtype=np.float64)
        if len(losses) < 2 or window < 1:
            raise ValueError("the loss detector needs at least two reference losses")
        self.mu = float(losses.mean())
        self.sd = float(losses.std(ddof=1)) / math.sqrt(window) or 1e-12
        rng = np.random.default_rng([self.seed, 0x9A])
        stats = []
        for _ in range(self.streams):
            draws = rng.choice(losses, size=(self.stream_windows, window)).mean(axis=1)
            stats.append(self._run((draws - self.mu) / self.sd))
        self.null = np.concatenate(stats)
        self.threshold = float(np.quantile(self.null, 1.0 - self.alpha, method="higher"))
        self.reset()
        return self

    def _run(self, z: np.ndarray) -> np.ndarray:
        """The statistic after each window of a fresh run over standardized window means (no alarms)."""
        t = np.arange(1, len(z) + 1)
        mean = np.cumsum(z) / t
        cum = np.cumsum(z - mean - self.delta)
        return cum - np.minimum.accumulate(np.minimum(cum, 0.0))

    def score(self, window_mean_loss: float) -> Score:
        z = (float(window_mean_loss) - self.mu) / self.sd
        self.count += 1
        self.mean += (z - self.mean) / self.count
        self.cum += z - self.mean - self.delta
        self.low = min(self.low, self.cum)
        stat = self.cum - self.low
        alarm = stat > self.threshold
        if alarm:
            self.reset()
        return Score(float(stat), self.threshold, bool(alarm))
