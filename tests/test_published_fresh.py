"""The blind corpus of fresh published runs (`planning/published_runs_fresh.toml`, issue 19): it parses with
the corpus's own loader, every row comes from a source outside the six the cost model was designed on and
says where its facts were read, and its keys and layouts are consistent with the main corpus's format."""

import pytest
import tomllib

from steward.planning.published import CORPUS, FRAMEWORKS, FRESH, load_runs

SEEN_SOURCES = {"llm-foundry", "megatron-sc21", "megatron-sp22", "torchtitan", "bigscience", "kempnerforge"}
GPUS = CORPUS.with_name("gpus.toml")


@pytest.fixture(scope="module")
def fresh():
    return load_runs(FRESH)


def test_parses_with_the_corpus_loader(fresh):
    assert len(fresh) >= 7
    assert len({r["id"] for r in fresh}) == len(fresh)


def test_every_row_is_from_an_unseen_source_and_cites_where(fresh):
    corpus_sources = {r["source"] for r in load_runs()}
    for run in fresh:
        assert run["source"] not in SEEN_SOURCES | corpus_sources, run["id"]
        assert run["where"].strip(), run["id"]


def test_rows_use_the_corpus_keys_and_known_gpus_and_frameworks(fresh):
    corpus_keys = set().union(*(r.keys() for r in load_runs()))
    with open(GPUS, "rb") as f:
        gpus = tomllib.load(f)
    for run in fresh:
        assert set(run) <= corpus_keys, (run["id"], set(run) - corpus_keys)
        assert run["gpu"] in gpus, run["id"]
        assert run["framework"] in FRAMEWORKS, run["id"]
        assert run["metric"] in {"tokens_per_s_per_gpu", "tflops_per_gpu", "mfu", "hfu"}, run["id"]
        assert run["published"] > 0, run["id"]


def test_layouts_account_for_every_gpu_and_the_global_batch(fresh):
    for run in fresh:
        lay = run["layout"]
        assert lay["tp"] * lay["pp"] * lay["dp_replicate"] * lay["dp_shard"] == run["gpus"], run["id"]
        data_parallel = lay["dp_replicate"] * lay["dp_shard"]
        assert run["global_batch"] % (lay["micro_batch"] * data_parallel) == 0, run["id"]
        assert lay["recompute"] in {"none", "selective", "full"}, run["id"]
        m = run["model"]
        assert m["mlp"] in {"gelu", "swiglu"} and m["n_heads"] % m["n_kv_heads"] == 0, run["id"]


def test_bench_predicts_the_fresh_rows_with_the_shipped_constants_and_never_fits_them(monkeypatch, capsys):
    """`bench costmodel` reports the fresh rows apart: predicted by kernels.FITTED (the constants fitted on
    the corpus), not part of the leave-one-source-out folds, and summarised on their own."""
    from steward.bench.costmodel import bench_costmodel
    from steward.planning.published import predict_run

    out = bench_costmodel([])
    fresh_ids = {r["id"] for r in load_runs(FRESH)}
    assert not fresh_ids & {r["id"] for r in out["leave_one_source_out"]["rows"]}
    rows = out["fresh"]["rows"]
    assert [r["id"] for r in rows] == [r["id"] for r in load_runs(FRESH)]
    for run, row in zip(load_runs(FRESH), rows):
        assert row["predicted"] == predict_run(run)["predicted"]
        assert row["error"] == row["predicted"] / run["published"] - 1
    assert out["fresh"]["mean_abs_error"] == sum(abs(r["error"]) for r in rows) / len(rows)
    assert "fresh: mean |error|" in capsys.readouterr().err
