"""Four CPU processes (gloo): (dp_shard 2, tp 2), (dp_replicate 2, dp_shard 2) and (pp 2, dp_shard 2)
train the same 10 steps as one process (in float32, and to 1e-9 in float64) and use the memory the
planner predicts for them; and `--parallel.auto true` runs the planner's layout. All in one launch of
4 processes."""

import json
from pathlib import Path

import pytest

from steward.bench.planner import measure_many, predicted
from steward.config import load_config
from steward.train.trainer import Trainer

pytestmark = pytest.mark.slow

COMMON = [
    "--model.flavor", "debug", "--train.seq_len", "32", "--train.batch_size", "4", "--train.lr", "1e-2",
    "--train.warmup_steps", "2", "--train.steps", "10", "--train.val_every", "0", "--train.val_batches", "1",
    "--data.max_docs", "400", "--train.device", "cpu", "--train.threads", "1", "--governance.enabled", "false",
    "--checkpoint.enabled", "false",
]
# Same global batch and weights, different reduction order (sharded sums, tensor-parallel partial
# sums, pipeline micro-batches). float32, since the same runs check the planner's memory prediction,
# which assumes fp32 weights. Measured on an AMD EPYC (2 cores, 1 thread per process): each layout
# differs from one process by at most 3.6e-7 relative over the 10 steps (final validation loss:
# 1.5e-7), and the spread over six reduction orders (these three, and one process with 1, 2 and 4
# micro-batches) is at most 7.2e-7; RTOL is 14x that, for other CPUs' kernels.
RTOL = 1e-5
# The float64 twins check the mathematics to 1e-9 on any CPU (measured: 3.4e-16 at most).
F64 = ["--train.dtype", "float64"]
RTOL_F64 = 1e-9
# The planner's memory per device against the peak live tensor bytes of the fullest rank.
MEMORY_RTOL = 0.15


def curve(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


LAYOUTS = {
    "fsdp2-x-tp2": ["--parallel.dp_shard", "2", "--parallel.tp", "2"],
    "hsdp2x2": ["--parallel.dp_replicate", "2", "--parallel.dp_shard", "2"],
    "pp2-x-fsdp2": ["--parallel.pp", "2", "--parallel.dp_shard", "2"],
    "auto": ["--parallel.auto", "true"],
}
EQUIVALENT = ["fsdp2-x-tp2", "hsdp2x2", "pp2-x-fsdp2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process, then every layout in turn inside one launch of 4 processes; the same in float64
    for the layouts that must equal one process."""
    root = tmp_path_factory.mktemp("layouts")
    singles = {}
    for name, dtype in (("single", []), ("single-f64", F64)):
        summary = Trainer(load_config(None, [*COMMON, *dtype, "--job.out", str(root / name)]), callbacks=[]).run()
        singles[name] = (curve(root / name), summary)
    flags = {name: [*COMMON, "--job.out", str(root / name), *extra] for name, extra in LAYOUTS.items()}
    flags.update({f"{name}-f64": [*COMMON, *F64, "--job.out", str(root / f"{name}-f64"), *LAYOUTS[name]]
                  for name in EQUIVALENT})
    results = measure_many(list(flags.values()), 4)
    return {**singles, **{name: (curve(root / name), got, flags[name]) for name, got in zip(flags, results)}}


@pytest.mark.parametrize("name", EQUIVALENT)
def test_four_processes_match_one(runs, name):
    reference, ref_summary = runs["single"]
    losses, got, flags = runs[name]
    summary = got["summary"]
    assert summary["world_size"] == 4
    assert sorted(losses) == list(range(1, 11))
    for step, loss in reference.items():
        assert losses[step] == pytest.approx(loss, rel=RTOL), step
    assert summary["final_val_loss"] == pytest.approx(ref_summary["final_val_loss"], rel=RTOL)
    _, pred = predicted(flags, 4)
    assert pred.memory_per_device_bytes == pytest.approx(max(got["peak_bytes"]), rel=MEMORY_RTOL)


@pytest.mark.parametrize("name", EQUIVALENT)
def test_four_processes_match_one_exactly_in_float64(runs, name):
    reference, ref_summary = runs["single-f64"]
    losses, got, _ = runs[f"{name}-f64"]
    assert got["summary"]["world_size"] == 4
    assert sorted(losses) == list(range(1, 11))
    for step, loss in reference.items():
        assert losses[step] == pytest.approx(loss, rel=RTOL_F64), step
    assert got["summary"]["final_val_loss"] == pytest.approx(ref_summary["final_val_loss"], rel=RTOL_F64)


def test_train_with_auto_plan(runs):
    """`--parallel.auto true`: rank 0 plans, every rank runs that layout."""
    _, got, flags = runs["auto"]
    summary, chosen = got["summary"], got["plan"]["plan"]
    assert summary["steps"] == 10 and summary["world_size"] == 4
    assert [summary[k] for k in ("tp", "pp", "dp_replicate", "dp_shard")] == [
        chosen[k] for k in ("tp", "pp", "dp_replicate", "dp_shard")]
    assert load_config(Path(summary["run_dir"]) / "config.toml").parallel.auto
