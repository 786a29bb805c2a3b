"""The adversarial (projected) update under DDP and FSDP2 equals the one-process update: 2 CPU
processes (gloo) through the launcher `steward train --nproc-per-node` uses, same global batch."""

import json
from pathlib import Path

import pytest

from steward.config import load_config
from steward.train.classify import ClassifyTrainer
from steward.train.launch import launch_local

pytestmark = pytest.mark.slow

COMMON = [
    "--train.task", "classify", "--model.flavor", "debug", "--train.batch_size", "8", "--train.lr", "1e-2",
    "--train.warmup_steps", "1", "--train.steps", "3", "--train.val_every", "0", "--train.device", "cpu",
    "--train.threads", "1", "--governance.enabled", "false", "--checkpoint.enabled", "false",
    "--fairness.madlibs_size", "64", "--fairness.madlibs_eval_size", "32", "--fairness.adversary", "representation",
    "--fairness.alpha", "1.0",
]
# same global batch, different reduction order (and FSDP2's sharded dot products): fp32 agrees to ~1e-6
RTOL = 1e-4


def curve(run_dir: Path) -> dict[int, tuple[float, float]]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: (r["loss"], r["adv_loss"]) for r in rows if "loss" in r}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "run"
    ClassifyTrainer(load_config(None, [*COMMON, "--job.out", str(out)]), callbacks=[]).run()
    return curve(out)


@pytest.mark.parametrize("layout", [["--parallel.dp_replicate", "2"], ["--parallel.dp_shard", "2"]], ids=["ddp", "fsdp2"])
def test_adversarial_update_matches_one_process(tmp_path, single, layout):
    out = tmp_path / "run"
    summary = launch_local(None, [*COMMON, "--job.out", str(out), *layout], nproc=2)
    assert summary["strategy"] == ("ddp" if "--parallel.dp_replicate" in layout else "fsdp")
    got = curve(out)
    assert sorted(got) == sorted(single) == [1, 2, 3]
    for step, (loss, adv) in single.items():
        # step 1's predictor loss is before any update; steps 2-3 follow projected updates
        assert got[step][0] == pytest.approx(loss, rel=RTOL), step
        assert got[step][1] == pytest.approx(adv, rel=RTOL), step
