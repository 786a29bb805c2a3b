"""The planner's cost model, its choices and errors, `steward plan` / `steward simulate`, and the
memory model checked against what runs here use."""

import dataclasses
import json

import pytest
import torch

from steward.cli.main import main
from steward.config import load_config
from steward.models.gpt import build_model, build_model_args
from steward.planning.cost import Layout, Request, predict
from steward.planning.footprint import layer_activation_bytes
from steward.planning.layout import PlanError, layout_problem, layouts, plan
from steward.planning.topology import load_cluster
from steward.planning.units import GIB


def saved_bytes(flavor: str, batch: int, seq: int, dtype: torch.dtype, autocast: bool) -> int:
    """Bytes autograd keeps for one block's backward, counted by storage: the activations only (their
    leading dim is the batch, or batch x sequence once flattened; weights and their casts are not)."""
    args = build_model_args(flavor, max_seq_len=seq)
    torch.manual_seed(0)
    model = build_model(args, "cpu").to(dtype)
    block = model.layers["0"]
    x = torch.randn(batch, seq, args.dim, dtype=dtype, requires_grad=True)
    seen: dict[int, int] = {}

    def pack(t):
        if t.dim() >= 2 and t.shape[0] in (batch, batch * seq):
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast)
    with amp, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        block(x, model.rope)
    return sum(seen.values())


@pytest.mark.parametrize("flavor, dtype, e, autocast", [
    ("tiny", torch.float32, 4, False),  # the CPU trainer
    ("debug", torch.float32, 4, False),
    ("tiny", torch.bfloat16, 2, False),  # FSDP2 with bf16 parameters
    ("gpt2-small", torch.float32, 2, True),  # one GPU: fp32 weights under bf16 autocast
])
def test_layer_activation_count_matches_autograd(flavor, dtype, e, autocast):
    batch, seq = 3, 64
    got = saved_bytes(flavor, batch, seq, dtype, autocast)
    predicted = layer_activation_bytes(build_model_args(flavor), batch * seq, 1, "none", e, autocast)
    # the model leaves out two per-token scalars per norm and the attention log-sum-exp: <5% here
    assert predicted == pytest.approx(got, rel=0.05)


def test_recompute_and_tensor_parallel_shrink_activations():
    args = build_model_args("7b")
    keep = layer_activation_bytes(args, 2048, 1, "none", 2)
    assert layer_activation_bytes(args, 2048, 1, "selective", 2) < 0.7 * keep
    assert layer_activation_bytes(args, 2048, 1, "full", 2) == 2048 * 2 * args.dim
    tp8 = layer_activation_bytes(args, 2048, 8, "none", 2)
    assert keep / 8 < tp8 < keep / 4  # sequence parallel splits nearly everything; two gathers stay whole


def _request(flavor="175b", nodes=64, limit_gib=72.0, batch=1536, cluster="a100-80gb-ib"):
    c = load_cluster(cluster, nodes=nodes)
    args = build_model_args(flavor)
    return Request(args=args, global_batch=batch, seq_len=args.max_seq_len, cluster=c,
                   memory_limit=limit_gib * GIB, name=flavor)


def test_175b_on_64_a100_nodes_fits_80gb():
    result = plan(_request())
    d = result.to_dict()
    assert set(d["plan"]) == {"tp", "pp", "dp_replicate", "dp_shard", "micro_batch_size", "recompute"}
    pred = d["predicted"]
    assert {"step_time_s", "memory_per_device_bytes", "tokens_per_s", "mfu", "comm_bytes_per_step"} <= set(pred)
    assert pred["memory_per_device_bytes"] <= 72 * GIB < 80e9
    lay = result.best.layout
    assert lay.tp * lay.pp * lay.dp == 512 and lay.tp <= 8  # tensor parallel inside a node
    assert 0 < pred["mfu"] < 1 and pred["tokens_per_s"] == pytest.approx(1536 * 2048 / pred["step_time_s"])
    times = [p.predicted.step_time_s for p in [result.best, *result.alternatives]]
    assert times == sorted(times)
    # the breakdowns add up to the totals
    parts = {k: v for k, v in pred["time"].items() if k != "data_parallel_total"}
    assert sum(parts.values()) == pytest.approx(pred["step_time_s"])
    assert sum(pred["memory"].values()) == pytest.approx(pred["memory_per_device_bytes"])


@pytest.mark.parametrize("flavor, cluster, nodes", [("1b", "a100-80gb-ib", 1), ("7b", "h100-80gb-ib", 2),
                                                    ("70b", "h100-80gb-ib", 4), ("tiny", "cpu-host", 1)])
@pytest.mark.parametrize("limit_gib", [4, 12, 24, 60])
def test_plans_never_exceed_the_memory_limit(flavor, cluster, nodes, limit_gib):
    req = _request(flavor, nodes, limit_gib, batch=64, cluster=cluster)
    req = dataclasses.replace(req, seq_len=min(req.seq_len, 2048))
    try:
        result = plan(req, top=10)
    except PlanError as e:
        assert "short by" in str(e)
        # and it is true: no layout fits
        assert all(predict(req, lay).memory_per_device_bytes > req.memory_limit for lay in layouts(req))
        return
    for p in [result.best, *result.alternatives]:
        assert p.predicted.memory_per_device_bytes <= req.memory_limit


def test_impossible_requests_say_what_is_short():
    with pytest.raises(PlanError, match=r"memory: no layout fits 1\.0 GiB .* short by [0-9.]+ GiB"):
        plan(_request(limit_gib=1.0))
    with pytest.raises(PlanError, match="train.batch_size: a global batch of 3 cannot be split"):
        plan(_request(batch=3))
    with pytest.raises(PlanError, match="train.seq_len"):
        plan(dataclasses.replace(_request(), seq_len=4096))


def test_topology_aware_beats_oblivious_and_slow_links_cost_time():
    req = _request("7b", 4, 72, batch=256, cluster="h100-80gb-ib")
    lay = Layout(tp=8, pp=1, dp_replicate=1, dp_shard=4, micro_batch_size=1, recompute="none")
    aware = predict(req, lay)
    oblivious = predict(dataclasses.replace(req, placement_aware=False), lay)
    assert oblivious.step_time_s > aware.step_time_s
    assert aware.comm_bytes_per_step["inter"] < oblivious.comm_bytes_per_step["inter"]
    assert aware.comm_bytes_per_step["total"] == pytest.approx(oblivious.comm_bytes_per_step["total"])


def test_plan_applies_to_a_config():
    cfg = load_config(None, ["--model.flavor", "debug"])
    p = plan(_request("debug", 1, 1, batch=16, cluster="cpu-host")).best
    applied = p.apply_to(cfg)
    assert (applied.parallel.tp, applied.parallel.pp, applied.parallel.dp_shard) == (p.layout.tp, p.layout.pp,
                                                                                     p.layout.dp_shard)
    assert applied.train.micro_batch_size == p.layout.micro_batch_size
    assert applied.memory.policy in ("keep", "selective", "full")


def test_plan_command_json_and_errors(capsys):
    assert main(["plan", "--model", "175b", "--cluster", "a100-80gb-ib", "--nodes", "64", "--json"]) == 0
    out = capsys.readouterr().out
    d = json.loads(out)  # exactly one JSON object
    assert d["predicted"]["memory_per_device_bytes"] < 80e9 and d["request"]["nodes"] == 64
    assert main(["plan", "--model", "175b", "--cluster", "a100-80gb-ib", "--nodes", "1", "--batch", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("steward plan: error: memory: no layout fits") and "\n" not in err
    assert main(["plan", "--model", "huge"]) == 2
    assert "--model: unknown flavor" in capsys.readouterr().err


def test_simulate_command(tmp_path, capsys):
    chart = tmp_path / "sim.png"
    assert main(["simulate", "--model", "175b", "--cluster", "a100-80gb-ib", "--nodes", "64", "--batch", "1536",
                 "--chart", str(chart), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    base, best = d["baseline"], d["plan"]
    assert base["layout"]["tp"] == 1 and base["layout"]["dp_shard"] == 512
    assert best["step_time_s"] < base["step_time_s"] and d["speedup"] > 1
    assert best["comm_bytes_per_step"]["inter"] < base["comm_bytes_per_step"]["inter"]
    assert not d["baseline_ddp"]["fits"]  # 175B does not fit plain data parallel
    rows = d["published"]
    assert len(rows) >= 4 and all(r["source"] and abs(r["error"]) < 1 for r in rows)
    assert main(["simulate", "--model", "7b", "--cluster", "h100-80gb-ib", "--nodes", "2", "--no-published",
                 "--chart", str(tmp_path / "b.png")]) == 0
    text = capsys.readouterr().out
    assert "steward plan" in text and "tokens/s" in text and "chart:" in text


def _state_cases():
    """(flavor, tp, dp_replicate, dp_shard, dtype) where tp divides the flavor's heads (debug's 4 heads
    take no tp 8)."""
    from steward.models.gpt import FLAVORS

    layouts = [(1, 1, 1, "fp32"), (1, 4, 1, "fp32"), (2, 1, 4, "bf16"), (8, 2, 8, "bf16"), (4, 1, 64, "fp32")]
    return [(f, *lay) for f in ("debug", "7b", "70b", "175b") for lay in layouts if FLAVORS[f].n_heads % lay[0] == 0]


@pytest.mark.parametrize("flavor, tp, rep, shard, dtype", _state_cases())
def test_layout_and_remat_planners_count_model_states_alike(flavor, tp, rep, shard, dtype):
    """One memory model: the layout planner (cost.device_memory, pp 1, one micro-batch) and the
    rematerialization planner (footprint.static_memory) count parameters, AdamW states and the
    wrapper's copies with the same functions; the one difference left is FSDP2's root, of which the
    layout planner counts one vocabulary matrix, not both and the final norm."""
    from steward.models.gpt import num_params
    from steward.parallel import ParallelDims
    from steward.planning.cost import device_memory
    from steward.planning.footprint import static_memory

    args = build_model_args(flavor)
    lay = Layout(tp=tp, pp=1, dp_replicate=rep, dp_shard=shard, micro_batch_size=1, recompute="none")
    req = Request(args=args, global_batch=lay.dp, seq_len=256, cluster=load_cluster("a100-80gb-ib", nodes=64),
                  memory_limit=80 * GIB, dtype=dtype)
    got = device_memory(req, lay)
    dims = ParallelDims(dp_replicate=rep, dp_shard=shard, world_size=lay.world, grad_accum=1, tp=tp)
    strategy = "fsdp" if dims.strategy == "ddp" and dims.uses_fsdp else dims.strategy  # as plan_context
    precision = "fp32" if dtype == "fp32" else ("bf16" if lay.fsdp else "autocast-bf16")
    static = static_memory(args, strategy, shard, tp, precision)
    n = num_params(args)
    per_device = n / (tp * (shard if lay.fsdp else 1))
    assert got["params"] == pytest.approx(static["params"], abs=4) and got["params"] == 4 * per_device
    assert got["optimizer"] == pytest.approx(static["optimizer"], abs=8)
    copies = got["weight_copies"]
    if lay.fsdp:
        root_left_out = req.act_bytes * (args.vocab_size * args.dim + args.dim) / tp
        assert copies + root_left_out == pytest.approx(static["wrapper"], abs=1)
    elif lay.ddp:
        assert copies == pytest.approx(static["wrapper"], abs=4)
    else:
        assert static["wrapper"] == 0 and copies == (0 if dtype == "fp32" else 2 * per_device)


def test_memory_prediction_for_a_run_here(tmp_path):
    """The planner's memory per device against the peak live tensor bytes of a real (CPU) run."""
    from steward.bench.planner import measured_train, predicted

    flags = ["--model.flavor", "debug", "--train.batch_size", "8", "--train.seq_len", "64", "--train.steps", "3",
             "--train.val_every", "0", "--train.device", "cpu", "--checkpoint.enabled", "false",
             "--governance.enabled", "false", "--data.max_docs", "300", "--job.out", str(tmp_path / "run")]
    _, pred = predicted(flags, 1)
    got = measured_train(load_config(None, flags))
    assert pred.memory_per_device_bytes == pytest.approx(got["peak_bytes"][0], rel=0.15)


def test_auto_plan_in_one_process(tmp_path):
    from steward.train.trainer import Trainer

    flags = ["--model.flavor", "debug", "--train.batch_size", "4", "--train.seq_len", "32", "--train.steps", "2",
             "--train.val_every", "0", "--train.device", "cpu", "--checkpoint.enabled", "false",
             "--governance.enabled", "false", "--data.max_docs", "300", "--parallel.auto", "true",
             "--job.out", str(tmp_path / "run")]
    trainer = Trainer(load_config(None, flags), callbacks=[])
    summary = trainer.run()
    assert trainer.plan is not None and summary["steps"] == 2
    assert trainer.cfg.train.micro_batch_size == trainer.plan.layout.micro_batch_size


def test_steward_zero1_and_zero2_memory_shards_only_what_they_shard():
    """Steward's ZeRO-1 (parallel.shard_optimizer) keeps its fp32 parameters whole and shards AdamW's
    moments; ZeRO-2 (parallel.shard_gradients) also keeps no DDP gradient buckets. Megatron's
    distributed optimizer (master weights) shards the fp32 parameters too."""
    from steward.models.gpt import num_params
    from steward.planning.cost import Implementation, device_memory
    from steward.planning.footprint import ddp_bucket_bytes

    args = build_model_args("7b")
    lay = Layout(tp=1, pp=1, dp_replicate=4, dp_shard=1, micro_batch_size=1, recompute="full")
    req = Request(args=args, global_batch=4, seq_len=256, cluster=load_cluster("a100-80gb-ib", nodes=1),
                  memory_limit=80 * GIB, dtype="fp32")
    n = num_params(args)
    ddp = device_memory(req, lay)
    zero1 = device_memory(dataclasses.replace(
        req, impl=Implementation(optimizer_sharded=True, shards_master_weights=False)), lay)
    zero2 = device_memory(dataclasses.replace(
        req, impl=Implementation(optimizer_sharded=True, shards_master_weights=False, gradients_sharded=True)), lay)
    master = device_memory(dataclasses.replace(req, impl=Implementation(optimizer_sharded=True)), lay)
    assert zero1["params"] == ddp["params"] == 4 * n
    assert zero1["optimizer"] == pytest.approx(ddp["optimizer"] / 4) and master["params"] == pytest.approx(n)
    assert ddp["weight_copies"] - zero2["weight_copies"] == pytest.approx(ddp_bucket_bytes(n))
    assert zero1["weight_copies"] == ddp["weight_copies"]


def test_auto_plan_with_a_sharded_optimizer_keeps_to_plain_replicas():
    """parallel.auto with parallel.shard_optimizer (ZeRO-1/2 over DDP replicas) plans only layouts that
    validate_world accepts: dp_replicate = the world size (it chose dp_shard 2 before, then failed)."""
    from steward.planning.layout import apply_auto_plan, request_from_config

    cfg = load_config(None, ["--model.flavor", "debug", "--train.batch_size", "8", "--train.seq_len", "32",
                             "--parallel.auto", "true", "--parallel.shard_optimizer", "true"])
    best = apply_auto_plan(cfg, 2, 2)
    assert (best.layout.dp_replicate, best.layout.dp_shard, best.layout.tp, best.layout.pp) == (2, 1, 1, 1)
    req = request_from_config(cfg, 2, 2)
    assert "plain DDP replicas only" in layout_problem(req, Layout(1, 1, 1, 2, 1, "none"))
