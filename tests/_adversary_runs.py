"""Tiny classifier runs with an equalized-odds adversary, shared by the tests of its options
(fairness.adversary_direction, fairness.adversary_cells): the arguments, the logged losses, and the
check that a 2-rank gloo DDP run's losses equal one process's."""

from __future__ import annotations

import json

import pytest

from steward.config import load_config

TINY = ["--train.task", "classify", "--model.flavor", "debug", "--train.steps", "3", "--train.batch_size", "8",
        "--train.warmup_steps", "1", "--train.val_every", "0", "--train.device", "cpu", "--train.threads", "1",
        "--fairness.madlibs_size", "64", "--fairness.madlibs_eval_size", "60", "--fairness.enabled", "false",
        "--governance.enabled", "false", "--fairness.adversary", "equalized_odds"]


def losses(run_dir) -> dict[int, float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def assert_two_ranks_train_the_same(tmp_path, extra: list[str]) -> None:
    """6 steps in float64 with `extra` arguments: one process, then 2 DDP ranks; every step's loss equal
    to 1e-9 (a rank whose adversary differed would change the averaged projected gradient), and the same
    identity words removed (v8's default with an adversary: every rank learns them from the whole split)."""
    from steward.classify.trainer import ClassifyTrainer
    from steward.jobs import launch_local

    args = [*TINY, "--train.steps", "6", "--fairness.madlibs_size", "1000", "--train.dtype", "float64",
            "--checkpoint.enabled", "false", *extra]
    ClassifyTrainer(load_config(None, [*args, "--job.out", str(tmp_path / "one")]), callbacks=[]).run()
    launch_local(None, [*args, "--job.out", str(tmp_path / "two"), "--parallel.dp_replicate", "2"], nproc=2)
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(one) == sorted(two) == list(range(1, 7))
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-9), step
    words = [json.loads((tmp_path / run / "summary.json").read_text()).get("identity_words") for run in ("one", "two")]
    assert words[0] == words[1] and (words[0] is None or len(words[0]) >= 5), words
