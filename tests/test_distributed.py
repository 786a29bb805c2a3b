"""Several CPU processes (gloo) through the same elastic launcher `steward train --nproc-per-node`
uses, compared against one process with the same global batch."""

import json
import os
import sys
from pathlib import Path

import pytest

from _multiproc import free_ports, run_ranks, spawn
from steward.config import load_config
from steward.jobs import launch_local
from steward.train.trainer import Trainer

pytestmark = pytest.mark.slow

COMMON = [
    "--model.flavor", "debug", "--train.seq_len", "32", "--train.batch_size", "4", "--train.lr", "1e-2",
    "--train.warmup_steps", "2", "--train.steps", "6", "--train.val_every", "3", "--train.val_batches", "1",
    "--data.max_docs", "400", "--train.device", "cpu", "--train.threads", "1", "--governance.enabled", "false",
    "--checkpoint.every", "3",
]
# Same global batch, different reduction order: in float64 (train.dtype) the sums agree to about
# 1e-15 relative on any CPU, so 1e-9 separates the same mathematics from a different update.
F64 = ["--train.dtype", "float64"]
RTOL = 1e-9


def curve(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "run"
    Trainer(load_config(None, [*COMMON, *F64, "--job.out", str(out)]), callbacks=[]).run()
    return curve(out)


ZERO1 = ["--parallel.dp_replicate", "2", "--parallel.shard_optimizer", "true"]
ZERO2 = [*ZERO1, "--parallel.shard_gradients", "true"]


# ZeRO-2 with two micro-batches per rank: the first accumulates locally, the last reduces onto the owners
# (without accumulation, ZeRO-2 runs in test_sharded_optimizer_resumes_from_plain_ddp)
@pytest.mark.parametrize("layout", [["--parallel.dp_replicate", "2"], ["--parallel.dp_shard", "2"], ZERO1,
                                    [*ZERO2, "--train.micro_batch_size", "1"]],
                         ids=["ddp", "fsdp2", "ddp-zero1", "ddp-zero2-accum"])
def test_two_processes_match_one(tmp_path, single, layout):
    out = tmp_path / "run"
    summary = launch_local(None, [*COMMON, *F64, "--job.out", str(out), *layout], nproc=2)
    assert summary["world_size"] == 2
    assert summary["strategy"] == ("ddp" if "--parallel.dp_replicate" in layout else "fsdp")
    got = curve(out)
    assert sorted(got) == sorted(single)
    for step, loss in single.items():
        assert got[step] == pytest.approx(loss, rel=RTOL), step
    # cross world size: the 2-process FSDP/DDP checkpoint at step 3 resumes in 1 process
    resumed = tmp_path / "resumed"
    cfg = load_config(None, [*COMMON, *F64, "--job.out", str(resumed),
                             "--checkpoint.resume", str(out / "checkpoints" / "step-3")])
    Trainer(cfg, callbacks=[]).run()
    back = curve(resumed)
    assert sorted(back) == [4, 5, 6]
    for step in back:
        assert back[step] == pytest.approx(single[step], rel=RTOL), step


@pytest.mark.parametrize("zero", [ZERO1, ZERO2], ids=["zero1", "zero2"])
def test_sharded_optimizer_resumes_from_plain_ddp(tmp_path, single, zero):
    """ZeRO-1/2 checkpoints hold what unsharded ones hold (one resumes in one process:
    test_two_processes_match_one); the other way, a 2-process ZeRO-1/2 run resumes from a plain DDP
    checkpoint, each rank taking the moments it owns, and continues the one-process curve."""
    ddp = tmp_path / "ddp"
    launch_local(None, [*COMMON, *F64, "--job.out", str(ddp), "--parallel.dp_replicate", "2"], nproc=2)
    zero_run = tmp_path / "zero"
    launch_local(None, [*COMMON, *F64, "--job.out", str(zero_run), *zero,
                        "--checkpoint.resume", str(ddp / "checkpoints" / "step-3")], nproc=2)
    got = curve(zero_run)
    assert sorted(got) == [4, 5, 6]
    for step in got:
        assert got[step] == pytest.approx(single[step], rel=RTOL), step


def test_cli_nproc_per_node(tmp_path, capfd):
    """`steward train --nproc-per-node 2` end to end, and a worker-side error as one line."""
    from steward.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "--nproc-per-node", "2", *COMMON, "--train.steps", "2", "--job.out", str(out), "--json"]) == 0
    cap = capfd.readouterr()
    summary = json.loads(cap.out.strip().splitlines()[-1])
    assert summary["world_size"] == 2 and summary["strategy"] == "fsdp"
    # rank 0's weights replace the sharded random init: torch's CPU-mesh random-op warning is moot
    assert "DTensor random operators" not in cap.err
    ck = out / "checkpoints" / "step-2" / "manifest.json"
    ck.unlink()
    code = main(["train", "--nproc-per-node", "2", *COMMON, "--job.out", str(tmp_path / "b"),
                 "--checkpoint.resume", str(ck.parent)])
    assert code == 2
    assert "manifest.json is missing" in capfd.readouterr().err
    # the `steward` command as torchrun starts it, once per rank: the same error is exit code 2 on every
    # rank (not a SIGABRT from the interpreter's teardown of a process group it never destroyed)
    script = "import sys; from steward.cli.main import entry; sys.argv[0] = 'steward'; entry()"
    ranks = run_ranks([sys.executable, "-c", script, "train", *COMMON, "--job.out", str(tmp_path / "c"),
                       "--checkpoint.resume", str(ck.parent)], 2, timeout=300)
    assert [c for c, _ in ranks] == [2, 2], ranks
    assert "manifest.json is missing" in ranks[0][1]


def _pg_worker(rank: int, ports: tuple[int, int], out_dir: str, results) -> None:
    from datetime import timedelta

    import torch.distributed as dist

    from steward.jobs import run_training
    from steward.train.distributed import init_distributed, shutdown

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(ports[0]), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_WORLD_SIZE="2")
    cfg = load_config(None, [*COMMON, "--train.steps", "1", "--checkpoint.enabled", "false",
                             "--job.out", out_dir])
    run_training(cfg)  # creates the group, trains, destroys it
    after_training = dist.is_initialized()
    # the caller's own group (on a fresh store): init_distributed joins it, shutdown leaves it
    os.environ["MASTER_PORT"] = str(ports[1])
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    info = init_distributed(cfg)
    shutdown(info)
    kept = dist.is_initialized()
    dist.barrier()  # rank 0 hosts the store: nobody tears it down while the other still needs it
    results.put((rank, after_training, info.owns_group, kept))
    dist.destroy_process_group()


def test_process_group_destroyed_by_its_creator_only(tmp_path):
    """A worker's run_training destroys the group init_distributed made (NCCL warns at exit otherwise);
    a group the caller made before is left to the caller."""
    got = sorted(spawn(_pg_worker, (free_ports(2), str(tmp_path / "run")), nprocs=2, timeout=300))
    assert got == [(0, False, False, True), (1, False, False, True)]
