"""The cost model's fitted constants (`planning.costfit`): a deterministic fit, leave-one-source-out that
never sees the held-out source, the error band's comparisons, and `steward plan --layout` printing it."""

import json

import pytest

from steward.cli.main import main
from steward.models.gpt import build_model_args
from steward.planning import costfit
from steward.planning.kernels import BAND, FITTED, NAMES, ErrorBand
from steward.planning.published import load_runs

LAYOUT = "tp=8,pp=4,dp_replicate=1,dp_shard=16,micro_batch=1,recompute=full"
BASE = ["plan", "--model", "175b", "--cluster", "a100-80gb-ib", "--nodes", "64"]


@pytest.fixture(scope="module")
def small():
    """Three sources, few rows each: enough for the constants to move, quick to fit."""
    runs = load_runs()
    pick = [r for r in runs if r["source"] == "megatron-sc21"][:3]
    pick += [r for r in runs if r["source"] == "kempnerforge"][:4]
    pick += [r for r in runs if r["source"] == "llm-foundry"][:3]
    return pick


def test_fit_is_deterministic_and_moves_the_constants(small):
    a = costfit.fit(costfit.cases(small))
    b = costfit.fit(costfit.cases(small))
    assert a == b
    assert a != costfit.START


def test_leave_one_source_out_ignores_the_held_out_rows(small):
    """Perturbing a held-out source's published figure changes neither the constants that predict it
    nor its predicted value; it changes its error."""
    rows, constants = costfit.loso(costfit.cases(small))
    held = "kempnerforge"
    perturbed = [dict(r, published=r["published"] * 3) if r["source"] == held else r for r in small]
    rows2, constants2 = costfit.loso(costfit.cases(perturbed))
    assert constants2[held] == constants[held]
    assert constants2["megatron-sc21"] != constants["megatron-sc21"]  # a fold that trains on it does move
    for r, r2 in zip(rows, rows2):
        assert r2["predicted"] == pytest.approx(r["predicted"], rel=1e-12) or r["source"] != held
        if r["source"] == held:
            assert r2["error"] == pytest.approx((1 + r["error"]) / 3 - 1)


def test_shipped_constants_are_the_fit_on_every_source():
    """kernels.FITTED is what the fit gives on the whole corpus (rounded to 4 significant digits)."""
    fitted = costfit.fit(costfit.cases(load_runs()))
    for name in NAMES:
        assert getattr(FITTED, name) == pytest.approx(getattr(fitted, name), rel=2e-3), name


@pytest.mark.slow
def test_shipped_band_is_the_leave_one_source_out_band():
    """kernels.BAND is the central 90% of the corpus's leave-one-source-out errors (4 decimals)."""
    rows, _ = costfit.loso(costfit.cases(load_runs()))
    b = costfit.band(rows)
    assert (BAND.lo, BAND.hi, BAND.runs) == (pytest.approx(b.lo, abs=1e-4), pytest.approx(b.hi, abs=1e-4), len(rows))


def test_band_from_rows_and_comparisons():
    rows = [{"error": e} for e in (-0.5, -0.2, 0.0, 0.1, 0.3)]
    b = costfit.band(rows, coverage=0.5)
    assert (b.lo, b.hi, b.runs) == (pytest.approx(-0.2), pytest.approx(0.1), 5)
    band = ErrorBand(lo=-0.2, hi=0.25, coverage=0.9, runs=10)
    assert band.time_range(10.0) == (pytest.approx(8.0), pytest.approx(12.5))
    assert band.faster(10.0, 15.7)  # 12.5 < 12.56
    assert not band.faster(10.0, 15.6)  # 12.5 > 12.48: within the band
    assert not band.faster(15.7, 10.0)


def test_plan_layout_prints_the_band(capsys):
    assert main([*BASE, "--layout", LAYOUT]) == 0
    out = capsys.readouterr().out
    assert "band" in out and "error band" in out and f"{BAND.lo:+.0%}" in out
    assert main([*BASE, "--layout", LAYOUT, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    lo, hi = d["error_band"]["step_time_range_s"]
    t = d["predicted"]["step_time_s"]
    assert lo == pytest.approx(t * (1 + BAND.lo)) and hi == pytest.approx(t * (1 + BAND.hi))


def test_plan_marks_alternatives_within_the_band(capsys):
    assert main([*BASE, "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "error band" in out
    assert out.count("within the band of best") + out.count("slower than best beyond the band") == 2


def test_simulate_names_the_layout_that_beats_the_baseline_on_both():
    """The layout simulate reports beats the baseline on predicted time and memory, is the fastest that
    does, and its verdict is the band's comparison."""
    from steward.planning.cost import Request, calibration_for, predict
    from steward.planning.layout import layouts
    from steward.planning.simulate import simulate
    from steward.planning.topology import load_cluster

    cluster = load_cluster("a100-80gb-ib", 64)
    req = Request(args=build_model_args("175b"), global_batch=2048, seq_len=2048, cluster=cluster,
                  memory_limit=0.9 * cluster.device.memory_bytes, name="175b")
    result = simulate(req)
    d, base = result["dominates"], result["baseline"]
    cal = calibration_for(cluster)
    better = [p for p in (predict(req, lay, cal) for lay in layouts(req))
              if p.memory_per_device_bytes <= req.memory_limit
              and p.memory_per_device_bytes < base["memory_per_device_bytes"] and p.step_time_s < base["step_time_s"]]
    assert better and d is not None  # this request has one (the brute force above says so)
    assert d["step_time_s"] < base["step_time_s"] and d["memory_per_device_bytes"] < base["memory_per_device_bytes"]
    assert d["step_time_s"] == pytest.approx(min(p.step_time_s for p in better))
    assert result["dominates_beyond_band"] is BAND.faster(d["step_time_s"], base["step_time_s"])


def test_host_kernel_figures_give_the_cpu_constants():
    """A calibrated CPU: the GEMM shape factor solved from two products reproduces both measured rates,
    and host_constants runs the calibration's own product at the measured rate (nothing fitted)."""
    import dataclasses

    from steward.planning.calibrate import gemm_half
    from steward.planning.cost import calibration_for, host_constants
    from steward.planning.kernels import NEUTRAL, Constants, gemm_rate
    from steward.planning.topology import load_cluster

    half = gemm_half(512, 100e9, 64, 40e9)
    peak = 100e9 * (512 / 3 + half) / (512 / 3)
    c = Constants(gemm_half=half)
    assert gemm_rate(64, 64, 64, peak, c) == pytest.approx(40e9)
    assert gemm_rate(512, 512, 512, peak, c) == pytest.approx(100e9)
    assert gemm_half(512, 100e9, 64, 100e9) == 0.0
    cpu = load_cluster("cpu-host")
    dev = dataclasses.replace(cpu.device, kernels={"matmul_n": 512.0, "gemm_half": half, "attention": 0.2,
                                                   "elementwise_bandwidth": cpu.device.memory_bandwidth / 2})
    cluster = dataclasses.replace(cpu, device=dev)
    k = host_constants(cluster)
    rate = dev.flops("fp32")
    assert gemm_rate(512, 512, 512, rate, k) == pytest.approx(rate)
    assert (k.attention, k.elementwise) == (0.2, pytest.approx(8.0))
    assert calibration_for(cluster).kernel_constants() == k
    assert calibration_for(cpu).kernel_constants() == NEUTRAL  # uncalibrated: the rates as they are


def _run(run_id):
    return next(r for r in load_runs() if r["id"] == run_id)


def test_torchtitan_selective_reruns_the_forward_of_every_second_matmul():
    """torchtitan's 'op' checkpointing re-runs wk, wo and w3 in backward: on one GPU (no collectives to
    hide) the step grows by exactly their forward GEMMs, per block and micro-batch."""
    import dataclasses

    from steward.planning import kernels
    from steward.planning.cost import Calibration, predict
    from steward.planning.published import request_for

    req, lay = request_for(_run("torchtitan-llama3-8b-a100-64gpu"))
    lay = dataclasses.replace(lay, dp_shard=1)
    req = dataclasses.replace(req, global_batch=2, cluster=dataclasses.replace(req.cluster, nodes=1,
                                                                                  devices_per_node=1))
    plain = dataclasses.replace(req, impl=dataclasses.replace(req.impl, selective_recompute_matmuls=()))
    cal = Calibration(constants=FITTED)
    extra = predict(req, lay, cal).step_time_s - predict(plain, lay, cal).step_time_s
    per_block = kernels.forward_gemm_time(req.args, req.seq_len, 1, req.cluster.device.flops("bf16"), FITTED,
                                          ("wk", "wo", "w3"))
    assert per_block > 0
    assert extra == pytest.approx(req.args.n_layers * 2 * per_block, rel=1e-9)


def test_a_runs_node_network_replaces_the_presets_adapters():
    """BLOOM's nodes had 4 x 100 Gb/s Omni-Path: 50 GB/s per node, shared by its 8 GPUs."""
    from steward.planning.published import request_for

    req, _ = request_for(_run("bloom-176b-a100-384gpu"))
    assert req.cluster.inter.bandwidth == pytest.approx(50e9 / 8)
    req, _ = request_for(_run("narayanan-1t-3072gpu"))
    assert req.cluster.inter.bandwidth == pytest.approx(25e9)  # the DGX preset's adapter per GPU


def test_kempnerforge_holds_bf16_states():
    """KempnerForge's bf16 model: parameters, gradients and AdamW moments at half Steward's fp32 bytes."""
    import dataclasses

    from steward.planning.cost import Implementation, device_memory
    from steward.planning.published import request_for

    req, lay = request_for(_run("kempner-llama3-7b-h200-1gpu-tp1-fsdp1"))
    fp32 = device_memory(dataclasses.replace(req, impl=Implementation()), lay)
    bf16 = device_memory(req, lay)
    for part in ("params", "optimizer"):
        assert bf16[part] == pytest.approx(fp32[part] / 2)
    assert bf16["total"] < req.cluster.device.memory_bytes < fp32["total"]


def test_power_capped_board_runs_at_the_cube_root_of_its_power():
    """A run whose board is held below its rated power (torchtitan's 500 W H100s) is evaluated at
    (power / rated)^(1/3) of the datasheet's peak, and predicts that much less where it is compute-bound."""
    from steward.planning.published import RATED_POWER_W, request_for

    run = next(r for r in load_runs() if r["id"] == "torchtitan-llama3-8b-h100-8gpu")
    assert run["gpu_power_w"] == 500
    rated = {k: v for k, v in run.items() if k != "gpu_power_w"}
    capped_req, _ = request_for(run)
    rated_req, _ = request_for(rated)
    scale = (500 / RATED_POWER_W["h100"]) ** (1 / 3)
    for dtype, peak in rated_req.cluster.device.peak_flops.items():
        assert capped_req.cluster.device.peak_flops[dtype] == pytest.approx(peak * scale)
    full = dict(rated, gpu_power_w=RATED_POWER_W["h100"] + 100)  # above the rating: no boost
    assert request_for(full)[0].cluster.device.peak_flops == rated_req.cluster.device.peak_flops


def test_contention_adds_a_share_of_the_hidden_data_parallel_time():
    """With `contention` c, the exposed data-parallel time grows by c times the part that overlap hides;
    c = 0 is the plain overlap model."""
    import dataclasses

    from steward.planning.cost import Calibration, predict
    from steward.planning.published import request_for

    run = next(r for r in load_runs() if r["id"] == "mpt-13b-h100-64gpu-s2048")
    req, lay = request_for(run)
    exposed, steps = [], []
    for c in (0.0, 0.5, 1.0):
        p = predict(req, lay, Calibration(constants=dataclasses.replace(FITTED, contention=c)))
        exposed.append(p.time["data_parallel_exposed"])
        steps.append(p.step_time_s)
    total = p.time["data_parallel_total"]
    assert total > 0.1 and exposed[0] < 0.1 * total  # overlap hides most of it without contention
    assert exposed[2] >= total  # contention 1: nothing hidden is free
    assert exposed[1] - exposed[0] == pytest.approx(0.5 * (exposed[2] - exposed[0]))
    assert steps[1] - steps[0] == pytest.approx(exposed[1] - exposed[0])


def test_fused_attention_on_hopper_runs_at_its_own_share():
    """`attention_hopper` scales fused attention's rate on H100 and H200 only."""
    from steward.planning.kernels import for_device

    assert for_device(FITTED, "H100-SXM5-80GB").attention == pytest.approx(FITTED.attention * FITTED.attention_hopper)
    assert for_device(FITTED, "H200-SXM-141GB").attention == pytest.approx(FITTED.attention * FITTED.attention_hopper)
    assert for_device(FITTED, "A100-SXM4-80GB") == FITTED


def test_compiled_model_runs_its_element_wise_kernels_fused():
    """A run under torch.compile moves `compiled_elementwise` of the element-wise bytes eager moves: at 1
    it is the eager prediction, below 1 it is faster, and the memory is the same."""
    import dataclasses

    from steward.planning.cost import Calibration, predict
    from steward.planning.published import request_for

    runs = {r["id"]: r for r in load_runs()}
    compiled = runs["torchtitan-llama3-8b-h100-8gpu-compile"]
    assert compiled["compile"] is True and "compile" not in runs["torchtitan-llama3-8b-h100-8gpu"]
    req_c, lay = request_for(compiled)
    req_e, _ = request_for(runs["torchtitan-llama3-8b-h100-8gpu"])
    assert req_c.impl.compiled and not req_e.impl.compiled

    def step(req, fused):
        return predict(req, lay, Calibration(constants=dataclasses.replace(FITTED, compiled_elementwise=fused)))

    assert step(req_c, 1.0).step_time_s == pytest.approx(step(req_e, 1.0).step_time_s)
    assert step(req_c, 0.5).step_time_s < step(req_e, 0.5).step_time_s
    assert step(req_e, 0.5).step_time_s == pytest.approx(step(req_e, 1.0).step_time_s)
    assert step(req_c, 0.5).memory_per_device_bytes == step(req_e, 0.5).memory_per_device_bytes


def test_megatron_sequence_parallel_hides_the_backward_reduce_scatters():
    """Under `tp_backward_overlap` (Megatron-LM's sequence parallelism) two of a block's eight tensor-parallel
    collectives run beside the weight-gradient GEMMs of wq/wk/wv and w1/w3: the block's tensor-parallel time
    drops by min(those two, the GEMMs' time); bytes and compute are unchanged."""
    import dataclasses

    from steward.planning import cost, kernels
    from steward.planning.published import FRAMEWORKS, request_for

    run = next(r for r in load_runs() if r["id"] == "megatron-readme-22b-a100-8gpu")
    assert run["framework"] == "megatron-sp" and FRAMEWORKS["megatron-sp"].tp_backward_overlap
    req, lay = request_for(run)
    plain = dataclasses.replace(req, impl=dataclasses.replace(req.impl, tp_backward_overlap=False))
    rates, link = cost._Rates.of(req), cost._links(req, lay)["tp"]
    seconds, nbytes = cost._tp_layer(req, lay, FITTED, rates, link, core=True)
    seconds0, nbytes0 = cost._tp_layer(plain, lay, FITTED, rates, link, core=True)
    one = seconds0 / 8  # selective recompute of the attention core adds no collective
    tokens = lay.micro_batch_size * req.seq_len
    wgrad = kernels.forward_gemm_time(req.args, tokens, lay.tp, rates.flops, FITTED, ("wq", "wk", "wv", "w1", "w3"))
    assert seconds0 - seconds == pytest.approx(min(2 * one, wgrad)) and seconds < seconds0
    assert nbytes == nbytes0
    cal = cost.Calibration(constants=FITTED)
    assert cost.predict(req, lay, cal).time["compute"] == pytest.approx(cost.predict(plain, lay, cal).time["compute"])


def test_data_parallel_collectives_overlap_their_own_phase():
    """FSDP's forward all-gathers hide behind the forward only, the backward's collectives behind the
    backward, the gradient sync behind the last backward; what outlasts its phase waits, and `contention`
    of the hidden time still counts."""
    import dataclasses

    from steward.planning.cost import _DataParallel

    c = dataclasses.replace(FITTED, overlap=1.0, contention=0.0)
    # 2 micro-batches of 4 s, a quarter forward (1 s) and three quarters backward (3 s)
    dp = _DataParallel(forward=1.5, backward=2.0, last=2.0, exposed_once=0.1)
    dp.time = 2 * dp.forward + 2 * dp.backward + dp.last
    assert dp.exposed(2, 4.0, 0.25, c) == pytest.approx(2 * 0.5 + 0.0 + 1.0 + 0.1)
    hidden = dp.time - 2.0
    assert dp.exposed(2, 4.0, 0.25, dataclasses.replace(c, contention=0.5)) == pytest.approx(2.0 + 0.5 * hidden + 0.1)
    assert _DataParallel().exposed(3, 4.0, 0.25, c) == 0.0
    # a DDP all-reduce overlaps only the last micro-batch's backward, not the whole step
    ddp = _DataParallel(time=5.0, last=5.0)
    assert ddp.exposed(8, 4.0, 1 / 3, c) == pytest.approx(5.0 - 4.0 * 2 / 3)
