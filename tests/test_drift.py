"""Drift detectors: JS and MMD with permutation thresholds whose false-alarm rate on stationary synthetic
streams is alpha within binomial bounds, switches detected within two windows, Page-Hinkley firing on a
mean shift and not (beyond alpha) without one, and the window monitor's reference, Bonferroni split
and re-reference after an alarm."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steward.drift.detectors import (
    EmbeddingMMD,
    LossPageHinkley,
    TokenJS,
    js_divergence,
    permutation_threshold,
    permutations_needed,
    token_counts,
)
from steward.drift.monitor import WindowMonitor

V, T = 40, 24


def _rows(rng, p, k):
    return rng.choice(len(p), size=(k, T), p=p)


def _binomial_bounds(n, p, z=4.0):
    sd = math.sqrt(n * p * (1 - p))
    return n * p - z * sd, n * p + z * sd


def test_js_of_identical_windows_is_zero_and_of_disjoint_ones_one():
    rng = np.random.default_rng(0)
    c = rng.integers(0, 9, size=(3, V)).astype(np.float64) + 1
    assert np.all(np.abs(js_divergence(c, c)) < 1e-15)
    assert js_divergence(c, 3 * c) == pytest.approx(0.0, abs=1e-15)  # counts, not scale
    a, b = np.zeros(V), np.zeros(V)
    a[:5], b[5:9] = 1, 2
    assert js_divergence(a, b) == pytest.approx(1.0)


def test_token_counts_are_per_row_bincounts():
    rows = np.array([[0, 1, 1, 3], [2, 2, 2, 2]])
    np.testing.assert_array_equal(token_counts(rows, 5), [[1, 2, 0, 1, 0], [0, 0, 4, 0, 0]])


def test_the_permutation_quantile():
    assert permutations_needed(0.001) == 999 and permutations_needed(0.05) == 19
    null = np.arange(1.0, 20.0)  # 19 values: the 0.95 quantile is the largest
    assert permutation_threshold(null, 0.05) == 19.0
    with pytest.raises(ValueError, match="need 19"):
        permutation_threshold(null[:10], 0.05)


@pytest.mark.parametrize("kind", ["tokens", "embedding"])
def test_false_alarm_rate_on_a_stationary_stream_is_alpha(kind):
    """Many references (the rate is over references and windows, as the calibration promises), each
    followed by stationary windows: alarms / windows within 4 binomial standard deviations of alpha."""
    rng = np.random.default_rng(11)
    alpha, n, refs, windows = 0.05, 12, 60, 20
    p = rng.dirichlet(np.full(V, 0.5))
    alarms = 0
    for r in range(refs):
        if kind == "tokens":
            det = TokenJS(alpha, seed=r).fit(token_counts(_rows(rng, p, 8 * n), V), n)
            alarms += sum(det.score(token_counts(_rows(rng, p, n), V)).alarm for _ in range(windows))
        else:
            det = EmbeddingMMD(alpha, seed=r).fit(rng.normal(size=(8 * n, 6)), n)
            alarms += sum(det.score(rng.normal(size=(n, 6))).alarm for _ in range(windows))
    lo, hi = _binomial_bounds(refs * windows, alpha)
    assert lo <= alarms <= hi, (alarms, lo, hi)


def test_a_switch_is_detected_within_two_windows():
    rng = np.random.default_rng(5)
    p, q = rng.dirichlet(np.full(V, 0.5)), rng.dirichlet(np.full(V, 0.5))
    det = TokenJS(0.001, seed=1).fit(token_counts(_rows(rng, p, 128), V), 16)
    assert not any(det.score(token_counts(_rows(rng, p, 16), V)).alarm for _ in range(5))
    assert det.score(token_counts(_rows(rng, q, 16), V)).alarm
    mmd = EmbeddingMMD(0.001, seed=1).fit(rng.normal(size=(128, 6)), 16)
    shifted = rng.normal(size=(16, 6)) + np.array([1.5, 0, 0, 0, 0, 0])
    assert mmd.score(shifted).alarm and mmd.score(shifted).statistic > mmd.threshold


def test_page_hinkley_fires_on_a_mean_shift_and_rarely_without_one():
    rng = np.random.default_rng(3)
    alpha, window = 0.01, 4
    ph = LossPageHinkley(alpha, seed=0).fit(rng.normal(3.0, 0.5, size=256), window)
    stationary = [ph.score(rng.normal(3.0, 0.5, size=window).mean()).alarm for _ in range(3000)]
    assert sum(stationary) <= _binomial_bounds(3000, alpha)[1]  # calibrated to at most alpha per window
    for _ in range(20):  # a stretch without an alarm before the shift (an alarm restarts the statistic)
        ph.score(3.0)
    fired = [ph.score(rng.normal(3.0 + 0.5, 0.5, size=window).mean()).alarm for _ in range(10)]
    assert any(fired[:4]), (ph.threshold, fired)  # a one-standard-deviation shift of the per-step loss
    ph.reset()
    for _ in range(200):
        ph.score(3.0)
    assert not any(ph.score(rng.normal(3.0 - 0.5, 0.5, size=window).mean()).alarm for _ in range(50))  # a drop


def test_the_monitor_calibrates_scores_splits_alpha_and_rereferences():
    rng = np.random.default_rng(9)
    p, q = rng.dirichlet(np.full(V, 0.5)), rng.dirichlet(np.full(V, 0.5))
    mon = WindowMonitor(["tokens", "loss"], window=2, reference_windows=4, alpha=0.002, vocab_size=V, seed=0)
    assert mon.per_detector_alpha == pytest.approx(0.001)
    results = [mon.add(_rows(rng, p, 8), float(rng.normal(2, 0.1))) for _ in range(8)]
    assert results == [None] * 8 and mon.ready and mon.calibrations[0]["at_window"] == 4
    r = [mon.add(_rows(rng, p, 8), float(rng.normal(2, 0.1))) for _ in range(2)][-1]
    assert r is not None and r.index == 4 and set(r.scores) == {"tokens", "loss"} and not r.alarm
    assert r.figures()["drift_tokens"] == r.scores["tokens"].statistic
    r = [mon.add(_rows(rng, q, 8), float(rng.normal(2, 0.1))) for _ in range(2)][-1]
    assert r.alarm and r.scores["tokens"].alarm and r.figures()["drift_alarm"] == ["tokens"]
    assert not mon.ready  # the next four windows are the new reference
    for _ in range(8):
        assert mon.add(_rows(rng, q, 8), 2.0) is None
    assert mon.ready and len(mon.calibrations) == 2
    with pytest.raises(ValueError, match="drift.detectors"):
        WindowMonitor(["nope"], 2, 4, 0.01, V)
