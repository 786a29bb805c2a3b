"""A per-block plan under FSDP2 in two CPU processes (gloo): rank 0 plans, every rank applies the same
plan, and the loss curve is the one-process `keep` curve."""

import json

import pytest
import torch

from steward.config import load_config
from steward.jobs import launch_local
from steward.models import FLAVORS
from steward.parallel import ParallelDims
from steward.planning.remat import plan_context, predict, profile_for
from steward.train.trainer import Trainer

pytestmark = pytest.mark.slow

COMMON = [
    "--model.flavor", "debug", "--train.seq_len", "32", "--train.batch_size", "4", "--train.lr", "1e-2",
    "--train.warmup_steps", "2", "--train.steps", "4", "--train.val_every", "0", "--train.val_batches", "1",
    "--data.max_docs", "400", "--train.device", "cpu", "--train.threads", "1", "--governance.enabled", "false",
    "--checkpoint.enabled", "false",
    # float64: the plan (predicted from fp32 shapes, so the same in either dtype) is what the assertions
    # below check; the loss curve then equals one process's to 1e-9 on any CPU (same global batch, FSDP2's
    # other reduction order: measured 1.9e-16 relative in float64, AMD EPYC)
    "--train.dtype", "float64",
]


def curve(run_dir) -> list[float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def test_fsdp_plan_matches_single_keep(tmp_path):
    single = tmp_path / "single"
    Trainer(load_config(None, [*COMMON, "--job.out", str(single)]), callbacks=[]).run()
    # a budget between full and keep: the plan must mix policies
    flags = [*COMMON, "--parallel.dp_shard", "2", "--memory.policy", "plan", "--memory.profile", "analytic"]
    cfg = load_config(None, flags)
    ctx = plan_context(cfg, ParallelDims.from_config(cfg, 2), torch.device("cpu"), FLAVORS["debug"])
    profile = profile_for(ctx, "analytic")
    keep = predict(profile, ["keep", "keep"]).activation_peak_bytes
    full = predict(profile, ["full", "full"]).activation_peak_bytes
    budget_gb = (ctx.static["total"] + (keep + full) / 2) / 1e9
    out = tmp_path / "fsdp"
    summary = launch_local(None, [*flags, "--memory.budget_gb", repr(budget_gb), "--job.out", str(out)], nproc=2)
    mem = summary["memory"]
    assert summary["strategy"] == "fsdp" and mem["policy"] == "plan"
    assert "keep" in mem["policies"] and set(mem["policies"]) != {"keep"}
    assert mem["predicted_peak_bytes"] <= budget_gb * 1e9
    assert curve(out) == pytest.approx(curve(single), rel=1e-9)
