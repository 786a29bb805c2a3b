"""Any model and layout from the CLI (`--model.KEY`, `--model-file`, `steward plan --layout`), the corpus
of published runs, and `steward bench costmodel`'s arithmetic."""

import json

import pytest

from steward.cli.main import main
from steward.models.gpt import block_params, build_model_args
from steward.planning.cost import predict
from steward.planning.layout import PlanError, evaluate, parse_layout
from steward.planning.model_spec import ModelSpecError, model_args, resolve
from steward.planning.published import load_runs, megatron_flops, predict_run, request_for
from steward.planning.topology import load_cluster
from steward.planning.units import GIB

LAYOUT = "tp=8,pp=4,dp_replicate=1,dp_shard=16,micro_batch=1,recompute=full"
BASE = ["plan", "--model", "175b", "--cluster", "a100-80gb-ib", "--nodes", "64"]


def test_parse_layout():
    lay = parse_layout(LAYOUT)
    assert (lay.tp, lay.pp, lay.dp_replicate, lay.dp_shard, lay.micro_batch_size, lay.recompute) == (
        8, 4, 1, 16, 1, "full")
    for bad, said in (("tp=8,pp=4", "missing dp_replicate"), (LAYOUT + ",tp=2", "tp is given twice"),
                      (LAYOUT.replace("full", "most"), "recompute='most'"), (LAYOUT.replace("tp=8", "tp=0"), "tp='0'"),
                      (LAYOUT.replace("tp=8", "tp=x"), "tp='x'"), (LAYOUT + ",zz=1", "'zz=1' is not KEY=VALUE")):
        with pytest.raises(PlanError, match="--layout") as e:
            parse_layout(bad)
        assert said in str(e.value)


def test_plan_layout_equals_predict(capsys):
    from steward.planning.cost import Request, calibration_for

    assert main([*BASE, "--layout", LAYOUT, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    cluster = load_cluster("a100-80gb-ib", 64)
    req = Request(args=build_model_args("175b"), global_batch=4 * 512, seq_len=2048, cluster=cluster,
                  memory_limit=0.9 * cluster.device.memory_bytes, dtype="bf16", name="175b")
    expected = predict(req, parse_layout(LAYOUT), calibration_for(cluster))
    assert d["predicted"] == json.loads(json.dumps(expected.to_dict()))
    assert d["plan"]["tp"] == 8 and d["fits"] is (expected.memory_per_device_bytes <= req.memory_limit)
    assert "6 N + 12 L h s" in d["flop_formula"] and d["tflops_per_device"] > 0
    assert main([*BASE, "--layout", LAYOUT]) == 0
    out = capsys.readouterr().out
    assert "layout tp=8 pp=4" in out and "TFLOP/s per device" in out and "fits the limit" in out


@pytest.mark.parametrize("layout, said", [
    (LAYOUT.replace("dp_shard=16", "dp_shard=8"), "but the cluster has 512 devices"),
    (LAYOUT.replace("tp=8", "tp=16").replace("dp_shard=16", "dp_shard=8"), "tp=16 does not fit the 8 devices"),
    (LAYOUT.replace("tp=8", "tp=64").replace("dp_shard=16", "dp_shard=2") + "", "tp=64"),
    (LAYOUT.replace("pp=4", "pp=128").replace("dp_shard=16", "dp_shard=1").replace("tp=8", "tp=4"), "exceeds the model's 96 layers"),
    (LAYOUT.replace("micro_batch=1", "micro_batch=3"), "does not split"),
])
def test_plan_layout_errors_are_one_line(capsys, layout, said):
    assert main([*BASE, "--layout", layout]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("steward plan: error: --layout:") and said in err and "\n" not in err


def test_model_dimensions_by_flag_and_file(tmp_path, capsys):
    args, name = resolve("175b", overrides={"n_layers": 64, "vocab_size": 51200, "mlp": None})
    assert (args.n_layers, args.dim, args.vocab_size, name) == (64, 12288, 51200, "175b+n_layers=64,vocab_size=51200")
    # GELU 4h is described as the SwiGLU of the same parameters and FLOPs (8 h^2 in the MLP)
    gelu = model_args("tiny", {"dim": 1536, "n_heads": 12, "mlp": "gelu"})
    assert block_params(gelu) == 12 * 1536**2 + 2 * 1536
    f = tmp_path / "m.toml"
    f.write_text('[model]\nname = "gpt-1.7b"\nn_layers = 24\ndim = 2304\nn_heads = 24\nmlp = "gelu"\n'
                 "vocab_size = 51200\n")
    args, name = resolve("tiny", str(f), {"n_layers": 12})
    assert (args.n_layers, args.dim, args.ffn_dim, name) == (12, 2304, 6144, "gpt-1.7b+n_layers=12")
    assert main(["plan", "--model-file", str(f), "--model.n_layers", "12", "--cluster", "a100-80gb-ib",
                 "--train.seq_len", "256", "--layout", "tp=1,pp=1,dp_replicate=1,dp_shard=8,micro_batch=4,recompute=none"]) == 0
    assert "model gpt-1.7b+n_layers=12: 12 layers, dim 2304" in capsys.readouterr().out


@pytest.mark.parametrize("argv, said", [
    (["--model.dim", "100", "--model.n_heads", "3"], "--model.dim: 100 is not divisible by n_heads 3"),
    (["--model.n_layers", "0"], "--model.n_layers: 0 must be an integer >= 1"),
    (["--model.n_kv_heads", "3"], "--model.n_kv_heads: 3 does not divide n_heads 4"),
    (["--model", "huge"], "--model: unknown flavor"),
])
def test_model_flag_errors_name_the_flag(capsys, argv, said):
    assert main(["plan", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert said in err and "\n" not in err


def test_model_file_errors(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text("dim = 64\ncolour = 1\n")
    with pytest.raises(ModelSpecError, match="unknown key.*colour"):
        resolve("tiny", str(f))
    f.write_text("dim = -4\n")
    with pytest.raises(ModelSpecError, match=r"--model-file .*: dim: -4 must be an integer >= 1"):
        resolve("tiny", str(f))
    f.write_text("dim = [\n")
    with pytest.raises(ModelSpecError, match="not valid TOML"):
        resolve("tiny", str(f))


def test_cluster_file_gives_device_memory(tmp_path):
    """96 GB H100s: a cluster file naming the GPU overrides its memory."""
    f = tmp_path / "h100-96.toml"
    f.write_text('nodes = 1\ndevices_per_node = 8\n[device]\ngpu = "h100"\nmemory_gib = 96\n'
                 '[intra]\nname = "NVLink 4"\nbandwidth_gb_s = 450\nlatency_us = 3\n'
                 '[inter]\nname = "400G"\nbandwidth_gb_s = 50\nlatency_us = 5\n')
    c = load_cluster(str(f))
    assert c.device.memory_bytes == 96 * GIB and c.device.flops("bf16") > 0


def test_corpus_rows_are_sourced_and_evaluable():
    runs = load_runs()
    assert len(runs) >= 20 and len({r["id"] for r in runs}) == len(runs)
    for run in runs:
        assert run["where"] and run["source"] and run["published"] > 0
        assert run["metric"] in ("tokens_per_s_per_gpu", "tflops_per_gpu", "mfu", "hfu")
        req, lay = request_for(run)
        assert lay.world == run["gpus"] == req.cluster.world_size


def test_every_row_names_its_source_and_the_simulator_reads_the_corpus():
    """One place for each fact: `steward simulate`'s published runs are the corpus rows with a
    `simulate` name, with the corpus's figures and sources."""
    from steward.planning.published import simulator_runs
    from steward.planning.simulate import check_published

    runs = load_runs()
    assert all(str(r["source"]).strip() and str(r["where"]).strip() for r in runs)
    marked = simulator_runs(runs)
    rows = check_published()
    assert len(rows) == len(marked) >= 5
    for row, run in zip(rows, marked):
        assert (row["name"], row["source"], row["published"]) == (run["simulate"], run["where"], run["published"])
        assert row["predicted"] == pytest.approx(predict_run(run)["predicted"])


def test_bench_arithmetic_on_a_synthetic_corpus():
    from steward.bench.costmodel import evaluate_corpus, summarize

    s = summarize([{"error": 0.1}, {"error": -0.3}, {"error": 0.2}])
    assert s["mean_abs_error"] == pytest.approx(0.2) and s["max_abs_error"] == pytest.approx(0.3)
    assert s["mean_signed_error"] == pytest.approx(0.0)
    run = dict(load_runs()[0])
    req, lay = request_for(run)
    tokens = evaluate(req, lay).predicted.tokens_per_s / lay.world
    a, b = dict(run, id="a", source="x", published=tokens / 1.5), dict(run, id="b", source="y", published=tokens * 2)
    result = evaluate_corpus([a, b])
    assert [r["error"] for r in result["rows"]] == [pytest.approx(0.5), pytest.approx(-0.5)]
    assert result["mean_abs_error"] == pytest.approx(0.5) and result["mean_signed_error"] == pytest.approx(0.0)
    assert result["sources"] == 2 and result["by_source"]["x"]["max_abs_error"] == pytest.approx(0.5)
    # a TFLOP/s row: the run's own FLOP count over the predicted step time
    m = dict(run, metric="tflops_per_gpu", flop_formula="megatron", published=1.0)
    r = predict_run(m)
    assert r["predicted"] == pytest.approx(megatron_flops(m) / r["step_time_s"] / lay.world / 1e12)


def test_memory_check_compares_rows_with_a_measured_peak():
    """Rows with `measured_memory_gib` are compared with the memory `steward plan` predicts for their layout
    (error = predicted / measured - 1); rows without it are left out."""
    from steward.bench.costmodel import evaluate_corpus, format_memory, memory_check

    run = dict(load_runs()[0])
    assert "measured_memory_gib" not in run
    req, lay = request_for(run)
    gib = evaluate(req, lay).predicted.memory_per_device_bytes / GIB
    over, under = dict(run, id="over", measured_memory_gib=gib / 1.25), dict(run, id="under", measured_memory_gib=gib / 0.9)
    m = memory_check(evaluate_corpus([over, dict(run, id="none"), under]))
    assert [r["id"] for r in m["rows"]] == ["over", "under"] and m["runs"] == 2
    assert [r["memory_error"] for r in m["rows"]] == [pytest.approx(0.25), pytest.approx(-0.1)]
    assert m["rows"][0]["predicted_memory_gib"] == pytest.approx(gib)
    assert (m["min_error"], m["max_error"]) == (pytest.approx(-0.1), pytest.approx(0.25))
    assert m["within_tolerance"] == 1 and m["mean_abs_error"] == pytest.approx(0.175)
    assert "error -10.0% to +25.0%, mean |error| 17.5%, within 20% on 1 of 2" in format_memory(m)[-1]


def test_measured_memory_is_a_field_of_the_corpus(tmp_path):
    """Each source's measured peak memory lives in `measured_memory_gib`, not in free text; a bad value is
    a one-line error naming the field."""
    from steward.errors import ConfigError

    runs = load_runs()
    measured = [r for r in runs if "measured_memory_gib" in r]
    assert len(measured) == 18 and {r["source"] for r in measured} == {"torchtitan", "kempnerforge"}
    assert not any("memory" in r.get("notes", "") and "GiB per GPU" in r["notes"] for r in runs)
    assert not any("measured peak memory" in r.get("notes", "") for r in runs)
    f = tmp_path / "runs.toml"
    f.write_text('[[run]]\nid = "x"\nmeasured_memory_gib = "80 GB"\n')
    with pytest.raises(ConfigError, match="run 'x': measured_memory_gib: '80 GB' must be a positive number") as e:
        load_runs(f)
    assert "\n" not in str(e.value)
    f.write_text('[[run]]\nid = "y"\ngpu_power_w = 0\n')
    with pytest.raises(ConfigError, match="run 'y': gpu_power_w: 0 must be a positive number"):
        load_runs(f)
    f.write_text('[[run]]\nid = "z"\ncompile = "yes"\n')
    with pytest.raises(ConfigError, match="run 'z': compile: 'yes' must be true or false"):
        load_runs(f)


def test_bench_costmodel_json_has_the_memory_comparison(monkeypatch, capsys):
    import steward.planning.published as published

    runs = load_runs()
    small = [r for r in runs if r["source"] == "llm-foundry"][:2]
    small += [r for r in runs if r["source"] == "kempnerforge" and r["gpus"] <= 2]
    monkeypatch.setattr(published, "load_runs", lambda path=published.CORPUS: small if path == published.CORPUS else [])
    assert main(["bench", "costmodel", "--json"]) == 0
    captured = capsys.readouterr()
    d = json.loads(captured.out)
    assert d["fresh"]["runs"] == 0 and d["fresh"]["rows"] == []
    m = d["memory"]
    assert {"runs", "min_error", "max_error", "mean_abs_error", "tolerance", "within_tolerance", "rows"} <= set(m)
    assert m["runs"] == 3 and [r["id"] for r in m["rows"]] == [r["id"] for r in small[2:]]
    for row, run in zip(m["rows"], small[2:]):
        assert row["measured_memory_gib"] == run["measured_memory_gib"]
        assert row["memory_error"] == pytest.approx(predict_run(run)["predicted_memory_gib"]
                                                    / run["measured_memory_gib"] - 1)
    assert f"memory model vs measured peak memory: 3 runs, error {m['min_error']:+.1%}" in captured.err
