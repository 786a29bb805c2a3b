"""Rematerialization: policies keep gradients, predictions match measurements, the solver is exact."""

import itertools
import json
import random
import resource

import pytest
import torch

from steward.config import ConfigError, load_config
from steward.memory import MemoryPolicyError, apply_policies, apply_policy, policy_of
from steward.models import FLAVORS, build_model
from steward.planning.profile import ModelProfile, PolicyCost, profile_model
from steward.planning.remat import InfeasibleBudget, min_activation_peak, predict, solve, solve_activations
from steward.planning.tracker import measure_activations
from steward.train.checks import check_job

CPU_POLICIES = ("keep", "selective", "full")
MIXES = [("full", "selective"), ("selective", "keep"), ("keep", "full")]


def _grads(model, tokens) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    logits = model(tokens[:, :-1])
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten()).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.fixture(scope="module")
def debug_model():
    torch.manual_seed(0)
    # float64: recomputation must give keep's gradients; a float64 difference above 1e-9 is a bug, not
    # rounding, on any CPU
    model = build_model(FLAVORS["debug"], device="cpu", dtype=torch.float64)
    tokens = torch.randint(0, FLAVORS["debug"].vocab_size, (2, 65))
    return model, tokens


@pytest.mark.parametrize("policies", [("selective", "selective"), ("full", "full"), *MIXES])
def test_gradients_equal_keep(debug_model, policies):
    model, tokens = debug_model
    apply_policies(model.blocks(), ["keep", "keep"], "cpu")
    ref = _grads(model, tokens)
    apply_policies(model.blocks(), list(policies), "cpu")
    got = _grads(model, tokens)
    apply_policies(model.blocks(), ["keep", "keep"], "cpu")
    assert got.keys() == ref.keys()
    for name in ref:
        # the same ops on the same values: bitwise equal here (measured on an AMD EPYC, in float32 and
        # float64, 1 and 2 threads); another CPU's kernels may order a recomputed op's sums differently,
        # which float64 keeps below 1e-9 relative (atol: gradients up to about 1)
        torch.testing.assert_close(got[name], ref[name], rtol=1e-9, atol=1e-12, msg=name)


def test_apply_keeps_names_and_replaces_not_stacks(debug_model):
    model, _ = debug_model
    keys = list(model.state_dict())
    block = model.blocks()[0]
    apply_policy(block, "full")
    apply_policy(block, "selective")
    assert policy_of(block) == "selective"
    assert block._steward_forward.__func__ is type(block).forward  # wraps the class forward, once
    assert list(model.state_dict()) == keys
    apply_policy(block, "keep")
    assert "forward" not in block.__dict__ and policy_of(block) == "keep"


def test_offload_is_refused_on_cpu(debug_model):
    model, _ = debug_model
    with pytest.raises(MemoryPolicyError, match="memory.policy: offload"):
        apply_policies(model.blocks(), ["offload", "keep"], "cpu")
    with pytest.raises(MemoryPolicyError, match="memory.policy: unknown policy 'bogus'"):
        apply_policy(model.blocks()[0], "bogus")


@pytest.mark.parametrize("flavor,batch,seq", [("debug", 2, 64), ("tiny", 2, 96)])
def test_analytic_profile_matches_measured(flavor, batch, seq):
    """Fake tensors allocate nothing; on sizes that fit, their bytes are the measured ones."""
    args = FLAVORS[flavor]
    fake = profile_model(args, batch, seq, method="analytic", policies=CPU_POLICIES)
    real = profile_model(args, batch, seq, method="measured", policies=CPU_POLICIES, rounds=1)
    for p in CPU_POLICIES:
        a, m = fake.blocks[0][p], real.blocks[0][p]
        for field in ("saved_bytes", "forward_peak_bytes", "backward_peak_bytes"):
            assert getattr(a, field) == pytest.approx(getattr(m, field), rel=0.02), (p, field)
        assert a.recompute_flops == m.recompute_flops
    assert fake.head.peak_bytes == pytest.approx(real.head.peak_bytes, rel=0.02)
    # recomputation: full reruns every matmul of the forward, selective none (it saved them)
    keep, sel, full = (fake.blocks[0][p] for p in CPU_POLICIES)
    assert sel.recompute_flops == 0 and full.recompute_flops > 0
    assert full.saved_bytes < sel.saved_bytes < keep.saved_bytes


@pytest.fixture(scope="module")
def tiny_setup():
    args = FLAVORS["tiny"]
    batch, seq = 4, 64
    profile = profile_model(args, batch, seq, method="measured", policies=CPU_POLICIES, rounds=1)
    torch.manual_seed(0)
    model = build_model(args, device="cpu")
    tokens = torch.randint(0, args.vocab_size, (batch, seq + 1))
    return profile, model, tokens


@pytest.mark.parametrize("fraction", [1.0, 0.75, 0.5, 0.35])
def test_plan_fits_budget_and_prediction_holds(tiny_setup, fraction):
    profile, model, tokens = tiny_setup
    n = len(profile.blocks)
    keep_peak = predict(profile, ["keep"] * n).activation_peak_bytes
    budget = fraction * keep_peak
    policies = solve_activations(profile, budget)
    assert policies is not None
    plan = predict(profile, policies)
    assert plan.activation_peak_bytes <= budget
    apply_policies(model.blocks(), policies, "cpu")
    measured = measure_activations(model, tokens)["activation_peak_bytes"]
    apply_policies(model.blocks(), ["keep"] * n, "cpu")
    assert measured == pytest.approx(plan.activation_peak_bytes, rel=0.10)
    assert measured <= budget
    if fraction == 1.0:
        assert policies == ["keep"] * n  # nothing to save: no added time


@pytest.mark.parametrize("policy", CPU_POLICIES)
def test_fixed_policy_prediction_holds(tiny_setup, policy):
    profile, model, tokens = tiny_setup
    n = len(profile.blocks)
    apply_policies(model.blocks(), [policy] * n, "cpu")
    measured = measure_activations(model, tokens)["activation_peak_bytes"]
    apply_policies(model.blocks(), ["keep"] * n, "cpu")
    assert measured == pytest.approx(predict(profile, [policy] * n).activation_peak_bytes, rel=0.10)


# ---- the solver against brute force ------------------------------------------------------------


def _random_profile(rng: random.Random, n_blocks: int, policies=("keep", "selective", "full", "offload")):
    blocks = []
    for _ in range(n_blocks):
        keep = rng.randint(50, 100)
        costs = {"keep": PolicyCost(keep, keep + rng.randint(0, 20), keep + rng.randint(0, 40))}
        for p in policies[1:]:
            saved = rng.randint(0, keep)
            costs[p] = PolicyCost(saved, saved + rng.randint(0, 60), keep + rng.randint(0, 60),
                                  added_time_s=rng.choice([0.0, rng.random(), rng.random()]))
        blocks.append(costs)
    head = PolicyCost(rng.randint(0, 50), rng.randint(0, 80), rng.randint(0, 120))
    return ModelProfile("analytic", "test", "fp32", 1, 1, 1, "test", rng.randint(0, 30), blocks, head, 1.0,
                        policies=tuple(policies))


def _brute_force(profile, budget):
    best = None
    for combo in itertools.product(*[list(b) for b in profile.blocks]):
        plan = predict(profile, list(combo))
        if plan.activation_peak_bytes <= budget:
            key = (plan.added_time_s, plan.activation_peak_bytes)
            if best is None or key[0] < best[0] - 1e-12:
                best = key
    return best


def test_solver_equals_brute_force():
    rng = random.Random(7)
    checked = infeasible = 0
    for _ in range(300):
        profile = _random_profile(rng, rng.randint(1, 5))
        brute_min = min(predict(profile, list(c)).activation_peak_bytes
                        for c in itertools.product(*[list(b) for b in profile.blocks]))
        least, least_plan = min_activation_peak(profile)
        assert least == brute_min and predict(profile, least_plan).activation_peak_bytes == least
        budget = rng.randint(int(0.8 * brute_min), int(1.6 * brute_min) + 1)
        got = solve_activations(profile, budget)
        want = _brute_force(profile, budget)
        if want is None:
            assert got is None
            infeasible += 1
            continue
        plan = predict(profile, got)
        assert plan.activation_peak_bytes <= budget
        assert plan.added_time_s == pytest.approx(want[0], abs=1e-9)
        checked += 1
    assert checked > 150 and infeasible > 10  # both sides of the boundary were exercised


def test_solver_scales_to_175b_depth():
    rng = random.Random(3)
    block = _random_profile(rng, 1).blocks[0]
    profile = _random_profile(rng, 1)
    profile.blocks = [block] * 96
    least, _ = min_activation_peak(profile)
    plan = solve_activations(profile, least * 1.5)
    assert plan is not None and predict(profile, plan).activation_peak_bytes <= least * 1.5


def test_infeasible_budget_says_how_short(tiny_setup):
    profile, _, _ = tiny_setup
    static = {"total": 1_000_000}
    least, _ = min_activation_peak(profile)
    budget = static["total"] + least - 123_456
    with pytest.raises(InfeasibleBudget) as e:
        solve(profile, budget, static)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("memory.budget_gb: no plan fits")
    assert e.value.shortfall_bytes == 123_456 and e.value.min_peak_bytes == static["total"] + least
    assert "short" in msg
    plan = solve(profile, budget + 123_456, static)
    assert plan.peak_bytes <= budget + 123_456


# ---- config, trainer, CLI ----------------------------------------------------------------------


@pytest.mark.parametrize("flags,match", [
    (["--memory.policy", "most"], "memory.policy: must be keep, selective, full, offload or plan"),
    (["--memory.budget_gb", "-1"], "memory.budget_gb: must be >= 0"),
    (["--memory.budget_fraction", "0"], r"memory.budget_fraction: must be in \(0, 1\]"),
    (["--memory.profile", "guess"], "memory.profile: must be auto, measured or analytic"),
    (["--memory.plan_policies", "keep,nap"], "memory.plan_policies: a comma-separated list"),
    (["--memory.policy", "offload", "--train.device", "cpu"], "memory.policy: offload moves saved activations"),
])
def test_bad_settings_are_refused(flags, match):
    with pytest.raises(ConfigError, match=match) as e:
        check_job(load_config(None, flags))
    assert "\n" not in str(e.value)


DEBUG_RUN = [
    "--model.flavor", "debug", "--train.seq_len", "64", "--train.batch_size", "4", "--train.steps", "3",
    "--train.val_every", "0", "--train.val_batches", "1", "--data.max_docs", "300", "--train.device", "cpu",
    "--governance.enabled", "false", "--checkpoint.enabled", "false",
]


def _losses(out):
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def test_trainer_applies_plan_and_records_it(tmp_path):
    from steward.train.trainer import Trainer

    # float64 (the plan does not depend on train.dtype): the loss curves must agree to 1e-9 on any CPU
    f64 = ["--train.dtype", "float64"]
    keep = Trainer(load_config(None, [*DEBUG_RUN, *f64, "--job.out", str(tmp_path / "keep")]), callbacks=[]).run()
    assert keep["memory"]["policy"] == "keep"
    # a budget that forces recomputation: static plus half of keep's activations
    cfg = load_config(None, [*DEBUG_RUN, *f64, "--job.out", str(tmp_path / "plan"), "--memory.policy", "plan"])
    from steward.parallel import ParallelDims
    from steward.planning.remat import plan_context, profile_for

    trainer = Trainer(cfg, callbacks=[])
    args = FLAVORS["debug"]
    ctx = plan_context(cfg, ParallelDims.from_config(cfg, 1), torch.device("cpu"), args)
    profile = profile_for(ctx, "analytic")
    keep_act = predict(profile, ["keep"] * args.n_layers).activation_peak_bytes
    cfg.memory.budget_gb = (ctx.static["total"] + 0.6 * keep_act) / 1e9
    summary = trainer.run()
    mem = summary["memory"]
    assert mem["policy"] == "plan" and mem["fits_budget"]
    assert mem["policies"] != ["keep"] * args.n_layers
    assert mem["predicted_peak_bytes"] <= cfg.memory.budget_gb * 1e9
    assert json.loads((tmp_path / "plan" / "summary.json").read_text())["memory"] == mem
    assert [policy_of(b) for b in trainer.model.blocks()] == mem["policies"]
    # recomputation changes nothing the optimizer sees (measured: bitwise equal, in float32 too)
    assert _losses(tmp_path / "plan") == pytest.approx(_losses(tmp_path / "keep"), rel=1e-9)


def test_trainer_refuses_a_budget_no_plan_meets(tmp_path):
    from steward.train.trainer import Trainer

    cfg = load_config(None, [*DEBUG_RUN, "--job.out", str(tmp_path / "r"), "--memory.policy", "plan",
                             "--memory.budget_gb", "0.0001", "--memory.profile", "analytic"])
    with pytest.raises(InfeasibleBudget, match=r"memory.budget_gb: no plan fits 0.1 MB per device; .* short"):
        Trainer(cfg, callbacks=[]).run()


def test_memplan_cli_json(capsys):
    from steward.cli.main import main

    rc = main(["memplan", "--model.flavor", "debug", "--train.seq_len", "64", "--train.batch_size", "4",
               "--train.device", "cpu", "--memory.profile", "analytic", "--memory.budget_gb", "1", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)  # exactly one JSON object
    assert out["plan"]["policies"] == ["keep", "keep"]  # 1 GB is plenty for the debug model
    assert set(out["compared"]) == set(CPU_POLICIES)
    rc = main(["memplan", "--model.flavor", "debug", "--train.device", "cpu", "--memory.profile", "analytic",
               "--memory.budget_gb", "0.0001"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "short" in err and err.startswith("steward memplan: error: memory.budget_gb")


def test_memplan_175b_allocates_nothing():
    from steward.cli.memory_cmd import plan_report

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cfg = load_config(None, ["--model.flavor", "175b", "--model.vocab_size", "50304", "--train.seq_len", "2048",
                             "--train.batch_size", "64", "--train.micro_batch_size", "1", "--parallel.dp_shard", "64"])
    r = plan_report(cfg, gpu="h100")
    grown_gb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 / 1e9
    assert grown_gb < 2  # one 175B block alone is 3.6 GB in bf16
    plan = r["plan"]
    assert r["profile"] == "analytic" and len(plan["policies"]) == 96
    assert plan["predicted_peak_bytes"] <= r["budget_bytes"]
    assert not r["compared"]["keep"]["fits"]  # the budget binds: keep does not fit
    assert plan["added_time_s"] < r["compared"]["full"]["added_time_s"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="offload needs a GPU")
def test_offload_on_gpu_keeps_gradients_and_frees_device_memory():
    torch.manual_seed(0)
    model = build_model(FLAVORS["tiny"], device="cuda")
    tokens = torch.randint(0, 257, (4, 129), device="cuda")
    ref = _grads(model, tokens)
    keep = measure_activations(model, tokens)["saved_bytes"]
    apply_policies(model.blocks(), ["offload"] * 4, "cuda")
    got = _grads(model, tokens)
    off = measure_activations(model, tokens)["saved_bytes"]
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-5, atol=1e-7, msg=name)
    assert off < 0.5 * keep


def test_budget_and_static_memory_from_config(debug_model):
    from steward.models.gpt import block_params
    from steward.parallel import ParallelDims
    from steward.planning.footprint import static_memory
    from steward.planning.remat import device_memory_bytes, plan_context

    model, _ = debug_model
    args = FLAVORS["debug"]
    cfg = load_config(None, ["--model.flavor", "debug", "--train.device", "cpu", "--memory.budget_fraction", "0.5"])
    ctx = plan_context(cfg, ParallelDims.from_config(cfg, 1), torch.device("cpu"), args)
    assert ctx.budget_bytes == int(0.5 * device_memory_bytes(torch.device("cpu")))
    assert "offload" not in ctx.allowed  # not on the CPU
    cfg.memory.budget_gb = 2.5
    assert plan_context(cfg, ParallelDims.from_config(cfg, 1), torch.device("cpu"), args).budget_bytes == 2_500_000_000
    n = sum(p.numel() for p in model.parameters())
    assert block_params(args) == sum(p.numel() for p in model.blocks()[0].parameters())
    single = static_memory(args, "single", 1, 1, "fp32")
    assert (single["params"], single["grads"], single["optimizer"]) == (4 * n, 4 * n, 8 * n)
    fsdp = static_memory(args, "fsdp", 4, 1, "bf16")
    assert fsdp["params"] == 4 * -(-n // 4) and fsdp["wrapper"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_memplan_without_the_gpu_says_use_gpu_flag(capsys):
    from steward.cli.main import main

    assert main(["memplan", "--model.flavor", "debug", "--train.device", "cuda"]) == 2
    assert "--gpu NAME" in capsys.readouterr().err


def test_memplan_unknown_gpu_names_the_choices(capsys):
    from steward.cli.main import main

    assert main(["memplan", "--model.flavor", "debug", "--gpu", "h900"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "steward memplan: error: --gpu: unknown GPU 'h900'; choose one of a100, h100, h200"
