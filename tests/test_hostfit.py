"""This host's trainer fit (`planning.hostfit`): the fit recovers the constants that made synthetic step
times (float64, the cost model's own), the calibration file carries them into a CPU prediction as a
hand computation says, a bad trainer_fit section is a one-line error and a missing one falls back to
the kernel figures, and `steward bench planner` reports the leave-one-out error of its calibration runs."""

import dataclasses
import json

import numpy as np
import pytest

from steward.cli.main import main
from steward.models.gpt import Transformer, build_model_args
from steward.planning import hostfit
from steward.planning.cost import Layout, Request, calibration_for, predict, with_trainer_fit
from steward.planning.topology import ClusterError, apply_calibration, load_calibration, load_cluster

KNOWN = {"gemm": 0.61, "layer_overhead_s": 2.5e-3, "step_overhead_s": 7e-3, "optimizer_bytes_per_param": 310.0,
         "step_overhead_tp_s": 0.15, "step_overhead_fsdp_s": 0.06}
CAL = {"device_type": "cpu", "matmul_flops": {"fp32": 9e10, "bf16": 1.3e9}, "memory_bandwidth": 2e10,
       "layer_overhead_s": 1.1e-3, "layer_overhead_tp_s": 8.8e-3, "layer_overhead_fsdp_s": 2.1e-3,
       "kernels": {"matmul_n": 256.0, "gemm_half": 22.6, "attention": 0.21, "elementwise_bandwidth": 7e9}}


def _cluster(cal=CAL):
    return apply_calibration(load_cluster("cpu-host"), cal)


def _cases(cluster):
    """The calibration shapes as the bench plans them: micro-batches and parallelism as the shape says."""
    out = []
    for s in hostfit.SHAPES:
        args = build_model_args(s.flavor, vocab_size=s.vocab, max_seq_len=s.seq_len)
        req = Request(args=args, global_batch=s.batch, seq_len=s.seq_len, cluster=cluster, memory_limit=1e12,
                      dtype="fp32")
        out.append((req, Layout(tp=s.tp, dp_shard=s.dp_shard, micro_batch_size=s.micro_batch or s.batch // s.dp_shard)))
    return out


def test_the_fit_recovers_the_constants_that_made_the_step_times():
    cluster = _cluster()
    base = calibration_for(cluster)
    cases = _cases(cluster)
    truth = with_trainer_fit(base, KNOWN)
    measured = [predict(req, lay, truth).step_time_s for req, lay in cases]
    section = hostfit.host_fit([s.name for s in hostfit.SHAPES], cases, base, measured)
    for name, value in KNOWN.items():
        assert section["constants"][name] == pytest.approx(value, rel=1e-9), name
    # every run left out is predicted by the others' fit: the same constants, so its own step time
    for run in section["runs"]:
        assert abs(run["leave_one_out_error"]) < 1e-9 and abs(run["fitted_error"]) < 1e-9
    assert section["leave_one_out_mean_abs_error"] < 1e-9


def test_the_fit_keeps_constants_non_negative_and_needs_more_runs_than_constants():
    a_matrix = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert list(hostfit.nonnegative_lstsq(a_matrix, np.array([1.0, -1.0, 0.0]))) == [pytest.approx(0.5), 0.0]
    cluster = _cluster()
    cases = _cases(cluster)[:6]
    with pytest.raises(hostfit.HostFitError, match="6 calibration runs for 6 constants"):
        hostfit.host_fit(["a"] * 6, cases, calibration_for(cluster), [0.1] * 6)
    with pytest.raises(ValueError, match="without pipeline stages"):
        hostfit.design([(cases[0][0], Layout(pp=2, micro_batch_size=2))], calibration_for(cluster))


def test_the_calibration_file_carries_the_fit_into_a_cpu_prediction(tmp_path):
    """Written to the file and read back, the fitted constants change a one-process prediction by what a
    hand computation gives: (fitted - isolated) per-layer overhead per layer, the step overhead, and the
    optimizer's extra bytes per parameter at the copy bandwidth (GEMMs at the calibrated rate: gemm 1);
    under tensor parallel the step overhead grows by its own."""
    fit = dict(KNOWN, gemm=1.0)
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(CAL | {"trainer_fit": {"constants": fit}}))
    cluster = _cluster(load_calibration(path))
    assert cluster.device.trainer_fit == fit
    args = build_model_args("debug", max_seq_len=64)
    req = Request(args=args, global_batch=4, seq_len=64, cluster=cluster, memory_limit=1e12, dtype="fp32")
    lay = Layout(micro_batch_size=4)
    with_fit = predict(req, lay, calibration_for(cluster)).step_time_s
    plain_cluster = dataclasses.replace(cluster, device=dataclasses.replace(cluster.device, trainer_fit={}))
    without = predict(req, lay, calibration_for(plain_cluster)).step_time_s
    params = sum(p.numel() for p in Transformer(args).parameters())
    hand = (args.n_layers * (2.5e-3 - 1.1e-3) + 7e-3 + (310 - 92) * params / 2e10)
    assert with_fit - without == pytest.approx(hand, rel=1e-9)
    tp = Layout(tp=2, micro_batch_size=4)
    assert predict(req, tp, calibration_for(cluster)).time["step_overhead"] == pytest.approx(7e-3 + 0.15, rel=1e-12)


@pytest.mark.parametrize("edit, field", [
    (lambda f: f["constants"].update(gemm=0.0), "trainer_fit.constants.gemm is 0.0"),
    (lambda f: f["constants"].update(step_overhead_s=-1e-3), "trainer_fit.constants.step_overhead_s is -0.001"),
    (lambda f: f["constants"].pop("optimizer_bytes_per_param"), "trainer_fit.constants.optimizer_bytes_per_param is None"),
    (lambda f: f.pop("constants"), "trainer_fit.constants.gemm is None"),
])
def test_a_bad_trainer_fit_is_a_one_line_error(tmp_path, edit, field):
    fit = {"constants": dict(KNOWN)}
    edit(fit)
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(CAL | {"trainer_fit": fit}))
    with pytest.raises(ClusterError, match="trainer_fit") as e:
        load_calibration(path)
    assert field in str(e.value) and "\n" not in str(e.value) and "steward bench planner --save" in str(e.value)


def test_without_a_trainer_fit_a_cpu_uses_the_kernel_figures():
    cluster = _cluster()
    assert cluster.device.trainer_fit == {}
    cal = calibration_for(cluster)
    assert (cal.step_overhead_s, cal.optimizer_bytes_per_param, cal.layer_overhead_s) == (0.0, None, 1.1e-3)


@pytest.mark.slow
def test_bench_planner_reports_the_leave_one_out_error(capsys):
    assert main(["bench", "planner", "--json", "--layouts", "single", "--steps", "3", "--rounds", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    runs = out["calibration_runs"]
    assert [r["shape"] for r in runs] == [s.name for s in hostfit.SHAPES]
    for r in runs:
        assert r["leave_one_out_error"] == pytest.approx(r["leave_one_out_step_time_s"] / r["measured_step_time_s"] - 1)
    assert out["leave_one_out_mean_abs_step_time_error"] == pytest.approx(
        np.mean([abs(r["leave_one_out_error"]) for r in runs]))
    assert set(out["trainer_fit"]) == set(hostfit.NAMES) and out["trainer_fit"]["gemm"] > 0
    row = out["rows"][0]
    for key in ("step_time_error", "kernels_only_step_time_error", "rates_only_step_time_error"):
        assert out[f"mean_abs_{key}"] == pytest.approx(abs(row[key]))
    assert {"load_average_before", "load_average_after_each_round", "load_average_after"} <= set(out)
