"""`steward explain` on a real (briefly trained) run directory: --text, --global, --html, errors."""

import json

import pytest
import torch

from steward.cli.main import main
from steward.config import load_config
from steward.io import sha256_file
from steward.train.trainer import Trainer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a debug model: a second thread only spins on a shared machine
    out = tmp_path_factory.mktemp("explain") / "run"
    cfg = load_config(None, [
        "--model.flavor", "debug", "--train.seq_len", "64", "--train.batch_size", "2", "--train.steps", "2",
        "--train.val_every", "0", "--data.max_docs", "200", "--train.device", "cpu",
        "--governance.workspace", str(out.parent / "workspace"), "--job.out", str(out),
    ])
    Trainer(cfg).run()  # the default callbacks: governance records the run
    torch.set_num_threads(1)  # the trainer sets its own thread count (train.threads)
    yield out
    torch.set_num_threads(before)


def _json(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1  # --json: exactly one JSON object on stdout
    return json.loads(out[0])


def test_text_global_and_html(run_dir, tmp_path, capsys):
    res = _json(capsys, ["explain", str(run_dir), "--text", "the list of items", "--json"])
    assert [w["word"] for w in res["words"]] == ["the", "list", "of", "items"]
    assert sum(w["share"] for w in res["words"]) == pytest.approx(1.0)
    assert 0 < res["probability"] <= 1 and "rule" not in res

    data = tmp_path / "texts.txt"
    data.write_text("\n".join(f"return the value of item {i} in the list" if i % 2 else f"the name of file {i}"
                              for i in range(30)))
    g = _json(capsys, ["explain", str(run_dir), "--global", "--data", str(data), "--json", "--max-rules", "5"])
    assert g["held_out"] == 6 and g["fitted_on"] == 24
    assert set(g["table"]) == {"rules", "attention", "rollout", "grad_attention", "integrated_gradients", "random"}
    assert g["table"]["rules"]["n_rules"] <= 5
    for path, digest in g["artifacts"].items():
        assert sha256_file(path) == digest
    # the digests are an audit event of the run, under a signed tree head, and the log still verifies
    from steward.governance import load_run_ref

    store = load_run_ref(run_dir).open_store()
    try:
        entry = store.entry(g["audit_entry"])
    finally:
        store.close()
    assert entry.type == "explain.artifacts"
    assert entry.payload["artifacts"] == {p.rsplit("/", 1)[-1]: d for p, d in g["artifacts"].items()}
    assert main(["audit", "verify", str(run_dir), "--workspace", str(run_dir.parent / "workspace")]) == 0
    assert "no published tree head" not in capsys.readouterr().err
    # the run report gains an explanation section with the rules and their faithfulness
    assert main(["report", str(run_dir), "--workspace", str(run_dir.parent / "workspace")]) == 0
    capsys.readouterr()
    report = (run_dir / "report.html").read_text()
    section = report.split("<h2>Explanations</h2>")[1]
    assert "comprehensiveness AOPC" in section and section.count("<li>") >= len(g["rules"])
    assert "Possible spurious correlations" in report

    html = tmp_path / "x.html"
    res = _json(capsys, ["explain", str(run_dir), "--text", "the value of item", "--html", str(html), "--json"])
    assert "rule" in res and res["rule"]["sentence"]  # the rules written by --global are applied
    assert "<span" in html.read_text()
    assert main(["explain", str(run_dir), "--text", "the value of item"]) == 0
    assert "prediction:" in capsys.readouterr().out


def test_bad_input_is_one_line(run_dir, tmp_path, capsys):
    assert main(["explain", str(tmp_path), "--text", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.toml" in err[0]
    assert main(["explain", str(run_dir), "--text", "x " * 80]) == 2
    assert "seq_len" in capsys.readouterr().err
    assert main(["explain", str(run_dir), "--global"]) == 2
    assert "--data" in capsys.readouterr().err


def test_load_run_weights_cache_matches_the_checkpoint_and_is_rebuilt_when_stale(run_dir):
    """The consolidated weights cache gives the checkpoint's exact weights; a cache of another
    checkpoint (different manifest digest) or a damaged one is replaced, not trusted."""
    from steward.jobs import load_trained
    from steward.train import checkpoint as ckpt

    path = ckpt.list_checkpoints(run_dir)[-1][1]
    cache = ckpt.weights_cache(run_dir, path)
    cache.unlink(missing_ok=True)
    first = load_trained(run_dir).model.state_dict()  # through DCP; writes the cache
    assert cache.is_file()
    again = load_trained(run_dir).model.state_dict()  # from the cache
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)

    saved = torch.load(cache, weights_only=True)
    saved["manifest_sha256"] = "0" * 64
    saved["model"] = {k: torch.zeros_like(v) for k, v in saved["model"].items()}
    torch.save(saved, cache)
    stale = load_trained(run_dir).model.state_dict()
    assert all(torch.equal(first[k], stale[k]) for k in first)
    cache.write_bytes(b"not a torch file")
    damaged = load_trained(run_dir).model.state_dict()
    assert all(torch.equal(first[k], damaged[k]) for k in first)
    assert torch.load(cache, weights_only=True)["manifest_sha256"] == sha256_file(path / ckpt.MANIFEST)
