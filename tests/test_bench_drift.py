"""`steward bench drift` end to end at a small size: every field the README quotes, the token detector
catching every switch between the local domains, and a domain whose files are absent skipped in one line."""

from __future__ import annotations

import json

import pytest

from steward.cli.main import main


def test_a_domain_without_its_files_is_skipped_in_one_line(monkeypatch, capsys):
    from steward.bench import drift as bench
    from steward.data import system

    monkeypatch.setattr(system, "available", lambda: {"stdlib-docs": "", "manpages": "manpages: no man pages",
                                                      "licenses": "", "debian-packages": "x: absent"})
    a = bench._parse([])
    assert bench._domains(a) == ["stdlib-docs", "licenses"]
    assert capsys.readouterr().err.splitlines() == ["steward bench drift: skipping manpages: no man pages",
                                                   "steward bench drift: skipping x: absent"]
    monkeypatch.setattr(system, "available", lambda: {"stdlib-docs": "", "manpages": "gone", "licenses": "gone",
                                                      "debian-packages": "gone"})
    with pytest.raises(SystemExit, match="fewer than two domains"):
        bench._domains(a)


@pytest.mark.slow
def test_bench_drift_small(capsys):
    # the default window (4 batches) and reference (8 windows): the monitor calibrates at step 32 of 40
    code = main(["bench", "drift", "--json", "--steps", "40", "--rounds", "1", "--pool", "512",
                 "--stationary-windows", "60", "--repeats", "1", "--detectors", "tokens,loss", "--threads", "1"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["domains"]) >= 2 and out["default_detector"] == "tokens"
    tokens = out["detectors"]["tokens"]
    n = len(out["domains"])
    assert tokens["switches"] == n * (n - 1) and tokens["detected"] == tokens["switches"]
    assert tokens["stationary_windows"] >= 60 and tokens["false_alarms_per_1000"] >= 0
    assert 1 <= tokens["max_delay_windows"] <= 10 and tokens["mean_delay_ms"] > 0
    detail = out["overhead_detail"]
    assert detail["step_ms_off"] > 0 and detail["step_ms_on"] > 0 and detail["calibration_s"] > 0
    assert 0 < out["monitor_share_of_step"] < 1
    assert set(out["targets_met"]) == {"every switch within 2 windows", "<= 1 false alarm per 1000 windows",
                                       "<= 2% step overhead"}
