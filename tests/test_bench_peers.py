"""`steward bench peers`: a peer that is not installed is skipped with the reason, a run without loss
parity is invalid and gets no ratio, the auditor table is found in the files, and (slow) a real 2-step
run through every installed system agrees on the loss."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from steward.bench import peers
from steward.bench.peers_audit import AUDIT_ITEMS, inspect_run
from steward.cli.main import main


def _fake_ranks(loss: float, step_s: float, steps: int) -> list[dict]:
    ends = [i * step_s for i in range(1, steps + 1)]
    return [{"step_ends": ends, "step_cpu_ends": [t / 2 for t in ends], "first_step_s": step_s, "final_loss": loss, "live_tensor_bytes": 1000 + r,
             "max_rss_bytes": 2000 + r, "energy_j": None} for r in range(peers.WORLD)]


@pytest.fixture
def fake_launch(monkeypatch):
    """launch() without processes: every system trains to loss 5.0 in 0.1 s steps, unless told otherwise."""
    calls: list[str] = []
    losses: dict[str, float] = {}

    def launch(system, overrides, run_dir, timeout, *how):
        calls.append(system.name)
        return _fake_ranks(losses.get(system.name, 5.0), 0.2 if system.is_steward else 0.1, 6), ""

    monkeypatch.setattr(peers, "launch", launch)
    return calls, losses


def test_a_peer_that_is_not_installed_is_listed_as_skipped_with_the_reason(monkeypatch, fake_launch, capsys):
    calls, _ = fake_launch
    real = importlib.util.find_spec
    monkeypatch.setattr(peers.importlib.util, "find_spec", lambda name: None if name == "fairscale" else real(name))
    out = peers.bench_peers(["--systems", "steward-ddp,torch-ddp,fairscale-oss", "--steps", "6", "--warmup", "2",
                             "--reps", "2"])
    row = out["systems"]["fairscale-oss"]
    assert row["status"] == "skipped" and "fairscale is not installed" in row["reason"]
    assert "fairscale-oss" not in calls and calls.count("torch-ddp") == 2
    assert set(out["ratios"]["steward-ddp"]) == {"torch-ddp"}
    assert out["ratios"]["steward-ddp"]["torch-ddp"]["tokens_per_s"] == pytest.approx(0.5)
    assert out["ratios"]["steward-ddp"]["torch-ddp"]["cpu_tokens_per_s"] == pytest.approx(0.5)
    assert "FairScale OSS+ShardedDDP       skipped  fairscale is not installed" in capsys.readouterr().err


def test_a_run_without_loss_parity_is_invalid_and_gets_no_ratio(fake_launch):
    _, losses = fake_launch
    losses["torch-ddp"] = 5.0 + 1e-3
    out = peers.bench_peers(["--systems", "steward-ddp,torch-ddp,torch-fsdp2", "--steps", "6", "--warmup", "2",
                             "--reps", "1", "--loss-tol", "1e-4"])
    bad, good = out["systems"]["torch-ddp"], out["systems"]["torch-fsdp2"]
    assert bad["status"] == "invalid" and "not the same training" in bad["reason"]
    assert bad["loss_diff"] == pytest.approx(1e-3)
    assert good["status"] == "ok" and good["loss_diff"] == 0.0
    assert set(out["ratios"]["steward-ddp"]) == {"torch-fsdp2"}
    json.dumps(out)  # --json prints it


def test_every_system_runs_the_job_of_job_overrides_with_the_extra_overrides(monkeypatch):
    """benchmarks/governance_rss.py runs the benchmark's job through job_overrides: the same list every
    run of the benchmark gets, with the fixed job and the caller's overrides last."""
    seen: list[list[str]] = []

    def launch(system, overrides, run_dir, timeout, *how):
        seen.append(list(overrides))
        return _fake_ranks(5.0, 0.1, 6), ""

    monkeypatch.setattr(peers, "launch", launch)
    argv = ["--systems", "steward-ddp,torch-ddp", "--steps", "6", "--warmup", "2", "--reps", "1",
            "--governance.enabled", "false"]
    peers.bench_peers(argv)
    expected = peers.job_overrides(*peers.parse_args(argv), peers.Launcher())
    assert seen == [expected, expected]
    flags = dict(zip(expected[::2], expected[1::2]))
    assert flags["--train.steps"] == "6" and flags["--train.mixed_precision"] == "fp32"
    assert flags["--train.threads"] == "1" and expected[-2:] == ["--governance.enabled", "false"]


def test_the_figures_are_the_median_and_quartiles_after_warm_up(monkeypatch):
    ends = [1.0, 2.0, 2.5, 2.75, 3.0]  # step times 1, 0.5, 0.25, 0.25 s
    cpu = [[0.0, 0.5, 0.75, 1.0, 1.25], [0.0, 0.5, 0.75, 0.75, 1.0]]  # rank 1's step 4 took no CPU time
    ranks = [{"step_ends": ends, "step_cpu_ends": cpu[r], "first_step_s": 1.0, "final_loss": 4.0,
              "live_tensor_bytes": 10, "max_rss_bytes": 20, "energy_j": {str(s): 2.0 for s in range(1, 6)},
              "energy_source": "estimate"}
             for r in range(2)]
    row = peers.summarize(peers.SYSTEMS[0], [ranks, ranks], tokens_per_step=100, warmup=2)
    assert row["tokens_per_s"] == pytest.approx(400.0)  # steps 3-5: 0.5, 0.25, 0.25 s -> 200, 400, 400
    assert row["tokens_per_s_iqr"] == pytest.approx([250.0, 400.0])  # of 200, 200, 400, 400, 400, 400
    assert row["tokens_per_s_per_rep"] == [400.0, 400.0] and row["tokens_per_s_spread"] == 0.0
    # CPU time: the mean over the ranks per step: 0.25, 0.125, 0.25 s -> 400, 800, 400
    assert row["cpu_tokens_per_s"] == pytest.approx(400.0)
    assert row["energy_per_token_j"] == pytest.approx(2 * 3 * 2.0 / 600)
    assert row["energy_source"] == "estimate" and "estimated, not measured" in row["energy_note"]


def test_a_peer_loop_reads_the_energy_meter_after_every_step(monkeypatch, tmp_path):
    """timed_loop laps the meter that Steward's trainer builds from the same cfg.energy, once per step,
    and the figures carry its joules per step and its source into the J/token and the Steward / peer ratio."""
    import torch.distributed as dist

    from steward.bench import peers_systems
    from steward.config import load_config
    from steward.train import energy

    class FakeMeter:
        source = "fake"

        def __init__(self):
            self.laps = 0

        def start(self):
            self.laps = 0

        def lap(self):
            self.laps += 1
            return 0.5 * self.laps  # step s used s/2 J

        def close(self):
            pass

    built = []
    monkeypatch.setattr(energy, "build_meter", lambda cfg, device, host: built.append((cfg, host)) or FakeMeter())
    cfg = load_config(None, ["--train.steps", "4", "--job.out", str(tmp_path)])
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        timed = peers_systems.timed_loop(lambda b: (b.float() ** 2).mean(), lambda: torch.ones(2, 3), cfg)
        result = peers_systems.finish(cfg, timed, lambda out: None)
    finally:
        dist.destroy_process_group()
    assert built == [(cfg.energy, True)]
    assert result["energy_j"] == {1: 0.5, 2: 1.0, 3: 1.5, 4: 2.0} and result["energy_source"] == "fake"
    assert len(result["step_ends"]) == 4 and result["final_loss"] == 1.0
    ranks = [json.loads(json.dumps({**result, "max_rss_bytes": 1, "live_tensor_bytes": 1, "step_cpu_ends": [1.0, 2.0, 3.0, 4.0]}))] * 2
    # (as read back from rank-R.json; a synthetic CPU clock: these steps take too little CPU time to tell)
    row = peers.summarize(peers.SYSTEMS[2], [ranks], tokens_per_step=10, warmup=2)
    assert row["energy_per_token_j"] == pytest.approx(0.175) and row["energy_source"] == "fake"  # 1.5, 2.0 J
    rows = {"steward-ddp": {**row, "status": "ok", "energy_per_token_j": 0.35}, "torch-ddp": {**row, "status": "ok"}}
    assert peers.ratios(rows)["steward-ddp"]["torch-ddp"]["energy_per_token_j"] == pytest.approx(2.0)


@pytest.mark.parametrize("argv, flag", [
    (["--steps", "4", "--warmup", "4"], "--warmup"),
    (["--systems", "torch-ddp"], "--systems"),
    (["--systems", "steward-ddp,megatron"], "--systems"),
    (["--batch-size", "7"], "--batch-size"),
    (["--link", "fast"], "--link"),
])
def test_bad_arguments_are_one_line_errors_naming_the_flag(argv, flag, capsys):
    assert main(["bench", "peers", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and flag in err and "Traceback" not in err


def test_the_auditor_table_is_found_in_the_files(tmp_path):
    steward = tmp_path / "steward"
    (steward / "governance").mkdir(parents=True)
    (steward / "config.toml").write_text('[train]\nsteps = 2\n')
    (steward / "summary.json").write_text(json.dumps({"config_hash": "ab12"}))
    (steward / "report.json").write_text(json.dumps({
        "lineage": {"code": {"git_commit": "c0ffee"}, "datasets": [{"fingerprint": "f00d"}]},
        "audit": {"ok": True}, "decisions": [{"rule": "r", "effect": "allow"}], "model_card": {"caveats": "x"}}))
    (steward / "provenance.json").write_text(json.dumps({"payload": "..", "signatures": [{"sig": "xx"}]}))
    import sqlite3

    with sqlite3.connect(steward / "governance" / "audit.db") as db:
        db.execute("create table steward_heads (size integer)")
    found = inspect_run(steward)
    assert all(found[item]["found"] for item in AUDIT_ITEMS), found

    ds = tmp_path / "deepspeed" / "global_step2"
    ds.mkdir(parents=True)
    torch.save({"module": {"w": torch.zeros(2)}, "ds_config": {"train_batch_size": 8}, "ds_version": "0.19.8"},
               ds / "mp_rank_00_model_states.pt")
    found = inspect_run(tmp_path / "deepspeed")
    assert not any(found[item]["found"] for item in AUDIT_ITEMS)
    assert found["config+hash"]["evidence"].startswith("config in global_step2/mp_rank_00_model_states.pt, no hash")
    assert found["code version"]["evidence"] == "library version only (ds_version)"


@pytest.mark.slow
def test_a_two_step_run_through_every_installed_peer_agrees_on_the_loss():
    out = peers.bench_peers(["--steps", "2", "--warmup", "1", "--reps", "1"])
    json.dumps(out)
    for key in ("world_size", "steps", "reps", "loss_tolerance", "resolution", "cpu_resolution", "systems", "ratios"):
        assert key in out
    for system in peers.SYSTEMS:
        row = out["systems"][system.name]
        if peers.missing_reason(system):
            assert row["status"] == "skipped" and "not installed" in row["reason"]
            continue
        assert row["status"] == "ok", (system.name, row["reason"])
        assert abs(row["loss_diff"]) <= out["loss_tolerance"]
        for key in ("tokens_per_s", "tokens_per_s_iqr", "cpu_tokens_per_s", "live_tensor_bytes", "max_rss_bytes", "energy_per_token_j",
                    "final_loss", "audit"):
            assert key in row
        assert len(row["max_rss_bytes"]) == peers.WORLD and min(row["max_rss_bytes"]) > 0
        assert row["energy_per_token_j"] > 0 and row["energy_source"], system.name  # the same meter for all
    assert all(out["systems"]["steward-ddp"]["audit"][item]["found"] for item in AUDIT_ITEMS)
    # ZeRO-1 keeps half of AdamW's two fp32 moments on each of the 2 ranks: 4 bytes per parameter less
    # than DDP (to within the greedy partition's imbalance, a few norm vectors)
    from steward.data.tokenizer import build_tokenizer
    from steward.models.gpt import build_model_args, num_params

    n = num_params(build_model_args("tiny", vocab_size=build_tokenizer("byte").vocab_size, max_seq_len=256))
    live = {s: max(out["systems"][s]["live_tensor_bytes"]) for s in ("steward-ddp", "steward-zero1", "steward-zero2")}
    assert live["steward-ddp"] - live["steward-zero1"] == pytest.approx(4 * n, abs=16384)
    # ZeRO-2 keeps no gradient buckets between steps: the fp32 parameters and this rank's half of the two
    # moments remain, 8 bytes per parameter, beside a few small tensors (RoPE tables, the batch)
    assert live["steward-zero2"] == pytest.approx(8 * n, abs=65536)
    assert set(out["ratios"]["steward-ddp"]) == {
        s.name for s in peers.SYSTEMS if not s.is_steward and not peers.missing_reason(s)}


def test_steward_src_adds_steward_systems_run_from_that_tree(tmp_path, capsys):
    assert main(["bench", "peers", "--steward-src", str(tmp_path)]) == 2
    assert "--steward-src" in capsys.readouterr().err
    (tmp_path / "steward" / "train").mkdir(parents=True)
    (tmp_path / "steward" / "train" / "trainer.py").write_text("")
    args, _ = peers.parse_args(["--systems", "steward-ddp,torch-ddp", "--steward-src", str(tmp_path)])
    extra = [s for s in args.systems if s.src]
    assert [s.name for s in extra] == ["steward-ddp@src"] and extra[0].src == str(tmp_path.resolve())
    assert extra[0].is_steward and extra[0].overrides == peers.SYSTEMS[0].overrides


class _FakeLink:
    """LinkEmulation without namespaces (those need root): records that it was entered and left."""

    ns, veth, ADDRS = ("n0", "n1"), ("v0", "v1"), ("10.0.0.1", "10.0.0.2")
    events: list[str] = []

    def __init__(self, bits_per_s):
        self.bits_per_s = bits_per_s

    def __enter__(self):
        self.events.append(f"up {self.bits_per_s}")
        return self

    def __exit__(self, *exc):
        self.events.append("down")


def test_link_runs_steward_hsdp_compressed_against_each_peers_best_setting(monkeypatch, capsys):
    """--link: every run starts on the emulated link; the compressed run keeps its ratios with its loss
    difference reported (no parity expected); each library's fastest valid setting is its best."""
    seen: list[tuple[str, object, list[str]]] = []
    step_s = {"steward-ddp": 0.4, "steward-powersgd": 0.1, "torch-ddp": 0.3, "torch-fsdp2": 0.5,
              "deepspeed-zero1": 0.25, "deepspeed-zero2": 0.2}
    loss = {"steward-powersgd": 5.01, "deepspeed-zero2": 5.01}  # ZeRO-2 trained another job: invalid

    def launch(system, overrides, run_dir, timeout, world, worker, env, link):
        seen.append((system.name, link, [*overrides, *system.overrides]))
        return _fake_ranks(loss.get(system.name, 5.0), step_s[system.name], 6), ""

    _FakeLink.events = []
    monkeypatch.setattr(peers, "launch", launch)
    monkeypatch.setattr(peers, "LinkEmulation", _FakeLink)
    out = peers.bench_peers(["--link", "100mbit", "--steps", "6", "--warmup", "2", "--reps", "1", "--systems",
                             ",".join(step_s)])
    assert _FakeLink.events == ["up 100000000", "down"]
    assert all(isinstance(link, _FakeLink) for _, link, _ in seen) and len(seen) == len(step_s)
    flags = dict(seen[i][::2] for i in range(len(seen)))
    assert "powersgd" in flags["steward-powersgd"] and "powersgd" not in flags["steward-ddp"]
    lossy = out["systems"]["steward-powersgd"]
    assert lossy["status"] == "ok" and lossy["loss_diff"] == pytest.approx(0.01) and "not expected" in lossy["parity"]
    assert out["systems"]["deepspeed-zero2"]["status"] == "invalid"
    best = out["link_ratios"]["steward-powersgd"]
    assert {f: r["best"] for f, r in best.items()} == {"torch": "torch-ddp", "DeepSpeed": "deepspeed-zero1"}
    assert best["torch"]["tokens_per_s"] == pytest.approx(3.0) and best["DeepSpeed"]["tokens_per_s"] == pytest.approx(2.5)
    assert best["torch"]["loss_diff"] == pytest.approx(0.01)
    assert out["link"]["bits_per_s"] == 100_000_000 and out["link"]["ranks_per_node"] == 1
    assert "Steward HSDP 2x1 + PowerSGD    lossy" in capsys.readouterr().err


def test_link_that_cannot_be_emulated_is_a_one_line_error_saying_blocked(monkeypatch, capsys):
    from steward.bench.comm import EmulationUnavailable

    class NoLink(_FakeLink):
        def __enter__(self):
            raise EmulationUnavailable("creating network namespaces needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")

    monkeypatch.setattr(peers, "LinkEmulation", NoLink)
    monkeypatch.setattr(peers, "launch", lambda *a: pytest.fail("no run without the link"))
    assert main(["bench", "peers", "--link", "100mbit"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--link: blocked" in err and "needs root" in err


def _ddp_live_bytes(tmp_path, name: str, hook: bool) -> tuple[int, int, list[int]]:
    """(live tensor bytes, parameter bytes, DDP bucket sizes) after 3 AdamW steps of a DDP model on 1
    gloo rank, with or without a comm hook that reads each bucket's buffer (as Steward's does)."""
    import gc

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from steward.bench import peers_systems

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / name}", rank=0, world_size=1)
    try:
        model = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.Linear(96, 64))
        ddp = DDP(model)
        if hook:
            def all_reduce_buffer(state, bucket):
                return dist.all_reduce(bucket.buffer(), async_op=True).get_future().then(lambda f: f.value()[0])

            ddp.register_comm_hook(None, all_reduce_buffer)
        opt = torch.optim.AdamW(model.parameters())
        for _ in range(3):
            ddp(torch.ones(2, 64)).sum().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        result = (peers_systems.live_tensor_bytes(), sum(p.numel() * 4 for p in model.parameters()),
                  peers_systems.ddp_bucket_bytes())
        del ddp, model, opt
        gc.collect()
        return result
    finally:
        dist.destroy_process_group()


def test_live_tensor_bytes_count_ddp_buckets_once_whether_a_comm_hook_showed_them_to_python(tmp_path):
    """torch DDP's reducer keeps its gradient buckets in C++ (the walk over Python's objects cannot see
    them); a comm hook that reads `bucket.buffer()` gives them a Python object. The count is the same
    either way: the buckets are counted once, from DDP's own record of their sizes."""
    plain, params, buckets = _ddp_live_bytes(tmp_path, "plain", hook=False)
    hooked, _, hooked_buckets = _ddp_live_bytes(tmp_path, "hooked", hook=True)
    assert sum(buckets) == params and hooked_buckets == buckets  # every gradient has its place in a bucket
    assert hooked == plain
    assert plain >= 4 * params  # parameters, AdamW's two moments, the buckets
