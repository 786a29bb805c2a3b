"""The blind corpus of fresh published runs (`planning/published_runs_fresh.toml`, issue 19): it parses with
the corpus's own loader, every row comes from a source outside the six the cost model was designed on and
says where its facts were read, and its keys and layouts are consistent with the main corpus's format."""

import pytest
import tomllib

from steward.planning.published import CORPUS, FRAMEWORKS, load_runs

FRESH = CORPUS.with_name("published_runs_fresh.toml")
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
