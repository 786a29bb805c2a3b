"""`steward explain` on a real (briefly trained) run directory: --text, --global, --html, errors."""

import base64
import json

import numpy as np
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
    assert set(g["table"]) == {"rules", "attention", "rollout", "grad_attention", "grad_cam", "integrated_gradients",
                               "random"}
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
    # provenance.json was re-signed to attest the three files (the report reads faithfulness.json)
    assert g["provenance"] == str(run_dir / "provenance.json")
    prov = _json(capsys, ["audit", "provenance", str(run_dir), "--workspace", str(run_dir.parent / "workspace"),
                          "--json"])
    assert prov["ok"] and prov["log_checked"] and prov["problems"] == []
    subjects = json.loads(base64.b64decode(json.loads((run_dir / "provenance.json").read_text())["payload"]))["subject"]
    attested = {s["name"]: s["digest"]["sha256"] for s in subjects}
    assert {f"explain/{p.rsplit('/', 1)[-1]}": d for p, d in g["artifacts"].items()}.items() <= attested.items()
    # the run report gains an explanation section with the rules and their faithfulness
    assert main(["report", str(run_dir), "--workspace", str(run_dir.parent / "workspace")]) == 0
    capsys.readouterr()
    report = (run_dir / "report.html").read_text()
    section = report.split("<h2>Explanations</h2>")[1]
    assert "comprehensiveness AOPC" in section and section.count("<li>") >= len(g["rules"])
    assert "Possible spurious correlations" in report

    html = tmp_path / "x.html"
    res = _json(capsys, ["explain", str(run_dir), "--text", "the value of item", "--html", str(html), "--json"])
    # the rules written by --global are applied: the first that agrees with the model is shown, or the
    # reason none is (on this barely trained model the default line predicts another byte than the model)
    assert "rule" in res and (res["rule"] is not None and res["rule"]["sentence"] or res["no_rule"])
    if res["rule"] is not None:
        assert res["rule"]["sentence"].endswith(f"predict {res['prediction']!r}")
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


# ---- every run type the trainer makes: a classifier on our decoder, a Hugging Face LM and classifier --

CLASSIFY = ["--train.task", "classify", "--train.steps", "4", "--train.batch_size", "8", "--train.warmup_steps", "1",
            "--train.val_every", "0", "--fairness.madlibs_size", "64", "--fairness.madlibs_eval_size", "20"]
LM = ["--train.seq_len", "64", "--train.batch_size", "2", "--train.steps", "2", "--train.val_every", "0",
      "--data.max_docs", "200"]


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
    """A tiny LlamaForCausalLM built from a config and saved locally (nothing downloaded)."""
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("hf") / "llama"
    config = transformers.LlamaConfig(vocab_size=260, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def madlibs_texts(tmp_path_factory):
    from steward.fairness.data import generate_madlibs

    path = tmp_path_factory.mktemp("texts") / "texts.txt"
    path.write_text("\n".join(generate_madlibs(40, seed=3).texts) + "\n")
    return path


def _train(out, args):
    from steward.jobs import make_trainer

    before = torch.get_num_threads()
    cfg = load_config(None, [*args, "--train.device", "cpu", "--train.threads", "1", "--governance.enabled", "false",
                             "--job.out", str(out)])
    make_trainer(cfg, callbacks=[]).run()
    torch.set_num_threads(before)  # the trainer sets its own (train.threads)
    return out


@pytest.mark.parametrize("run_type", ["classify", "hf_lm", "hf_classify"])
def test_explain_on_every_run_type(run_type, request, madlibs_texts, tmp_path, capsys):
    """`--global` then `--text` from the CLI on a classify run of our decoder, and on a Hugging Face model's
    language-model and classify runs: exit 0, the prediction named by its class (a classifier's label, a
    language model's token), rules fitted with their fidelity, and the shown rule agreeing with the model."""
    args = {"classify": CLASSIFY, "hf_lm": LM, "hf_classify": CLASSIFY}[run_type]
    if run_type.startswith("hf"):
        args = [*args, "--model.hf_path", str(request.getfixturevalue("hf_model")), "--train.seq_len", "64"]
    else:
        args = [*args, "--model.flavor", "debug"]
    run = _train(tmp_path / "run", args)
    capsys.readouterr()

    g = _json(capsys, ["explain", str(run), "--global", "--data", str(madlibs_texts), "--json", "--max-rules", "5"])
    assert g["held_out"] == 8 and g["fitted_on"] == 32 and g["table"]["rules"]["n_rules"] <= 5
    assert 0 <= g["table"]["rules"]["fidelity"] <= 1
    saved = json.loads((run / "explain" / "rules.json").read_text())
    assert saved["fidelity"] == g["table"]["rules"]["fidelity"] and saved["fidelity_texts"] == 8
    if run_type != "hf_lm":
        assert saved["class_names"] == ["0", "1"]  # a classifier's classes are its labels

    text = "that woman is stupid and should shut up"
    res = _json(capsys, ["explain", str(run), "--text", text, "--json"])
    assert [w["word"] for w in res["words"]] == text.split()
    assert sum(w["share"] for w in res["words"]) == pytest.approx(1.0)
    assert 0 < res["probability"] <= 1
    if run_type != "hf_lm":
        assert res["prediction"] in ("0", "1") and res["probability"] >= 0.5  # binary: the larger class
    if res["rule"] is not None:
        assert res["rule"]["sentence"].endswith(f"predict {res['prediction']!r}")
    else:
        assert "no rule explains this prediction" in res["no_rule"]
    assert main(["explain", str(run), "--text", text]) == 0
    out = capsys.readouterr().out
    assert res["method"] == saved["search"]["relevance"]  # --method auto: the relevance the rules were fitted with
    assert f"prediction: {res['prediction']!r}" in out and f"relevance ({res['method']}):" in out
    assert ("rule " in out or "rule: no rule explains" in out) and "model loaded in" in out


def test_a_contradicting_rule_is_never_printed(tmp_path, capsys):
    """A rules file whose only rule holds on the text and concludes the other class than the classifier's:
    --text prints that no rule explains the prediction (with the fidelity), never that rule."""
    run = _train(tmp_path / "run", [*CLASSIFY, "--model.flavor", "debug"])
    capsys.readouterr()
    text = "the man at the market"
    pred = _json(capsys, ["explain", str(run), "--text", text, "--json"])["class"]
    other = 1 - pred
    from steward.explain import Condition, Instance, Rule, RuleList

    rules = RuleList([Rule((Condition("word", "market"),), other, 1.0, 10, 0.5)], other, ["0", "1"],
                     fidelity=0.75, fidelity_texts=20)
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules.to_json()))
    assert rules.fire(Instance(text.split(), [], []), None) == 0  # the list itself would answer with that rule
    assert main(["explain", str(run), "--text", text, "--rules", str(path)]) == 0
    out = capsys.readouterr().out
    assert rules.sentence(0) not in out and rules.sentence(-1) not in out
    assert f"no rule explains this prediction (1 rule(s) hold here, none predicts '{pred}'" in out
    assert "0.750 of 20 held-out texts" in out and "relevance (grad_attention):" in out


def test_global_on_a_random_label_classifier_says_no_rule_above_chance(tmp_path, capsys):
    """A classifier trained on the planted control's random labels (plain text and label columns):
    `--global` prints that it found no rule above chance and writes an empty list that says so; `--text`
    then shows no rule, with that reason."""
    from steward.explain.planted import TASKS, write_csv

    train, _ = TASKS["control"].splits(320, 10, seed=0)
    data = write_csv(tmp_path / "control.csv", *train)
    run = _train(tmp_path / "run", ["--train.task", "classify", "--model.flavor", "debug", "--train.steps", "40",
                                    "--train.batch_size", "16", "--train.warmup_steps", "2", "--train.val_every", "0",
                                    "--fairness.data", str(data)])
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(train.texts[:120]) + "\n")
    capsys.readouterr()
    assert main(["explain", str(run), "--global", "--data", str(texts), "--max-rules", "10"]) == 0
    out = capsys.readouterr().out
    assert "no rule above chance: none of the" in out
    saved = json.loads((run / "explain" / "rules.json").read_text())
    assert saved["rules"] == [] and saved["no_rule_above_chance"] and saved["search"]["kind"] == "beam"
    assert main(["explain", str(run), "--text", train.texts[0]]) == 0
    assert "rule: no rule explains this prediction (no rule above chance" in capsys.readouterr().out


def test_global_with_labels_says_first_when_the_rules_describe_the_model_only(tmp_path, capsys):
    """A classifier that learned the planted trigger, fitted from a CSV with a label column: with the true
    labels the rules are reported as usual; with random labels on the same texts `--global` says first
    that the model's rules predict the labels no better than chance (the rules still listed, rules.json
    flagged) and `--text` says it first too; a label that is no class is a one-line error."""
    from steward.explain.planted import TASKS, write_csv

    train, _ = TASKS["trigger"].splits(320, 10, seed=0)
    data = write_csv(tmp_path / "trigger.csv", *train)
    run = _train(tmp_path / "run", ["--train.task", "classify", "--model.flavor", "debug", "--train.steps", "40",
                                    "--train.batch_size", "16", "--train.warmup_steps", "2", "--train.val_every", "0",
                                    "--fairness.data", str(data)])
    capsys.readouterr()
    truth = write_csv(tmp_path / "truth.csv", train.texts[:150], train.labels[:150])
    g = _json(capsys, ["explain", str(run), "--global", "--data", str(truth), "--json", "--max-rules", "10"])
    from steward.explain import RuleList
    from steward.explain.formula import equivalent, rules_formula

    listed = RuleList.from_json(json.loads((run / "explain" / "rules.json").read_text()))
    assert equivalent(rules_formula(listed, first=1), "saffron")["equal"], g["rules"]  # the model learned it
    assert not g["rules_describe_model_only"] and g["search"]["label_check"]["above_chance"]
    noise = write_csv(tmp_path / "noise.csv", train.texts[:150], np.random.default_rng(1).integers(0, 2, 150))
    assert main(["explain", str(run), "--global", "--data", str(noise), "--max-rules", "10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no rule above chance on the labels: the model's rules (below) describe the model only; "
                          "they predict the labels no better than chance (p = ")
    assert listed.sentence(0) in out  # the rules stay: they are true of the model
    saved = json.loads((run / "explain" / "rules.json").read_text())
    assert saved["rules_describe_model_only"] and not saved["search"]["label_check"]["above_chance"]
    assert main(["explain", str(run), "--text", train.texts[0]]) == 0
    assert capsys.readouterr().out.startswith("no rule above chance on the labels")
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\n" + "".join(f"{t},maybe\n" for t in train.texts[:20]))
    assert main(["explain", str(run), "--global", "--data", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--data {bad}: label 'maybe' is not one of the model's classes ('0', '1')" in err[0]


def test_data_labels_are_read_from_csv_and_jsonl_all_or_none(tmp_path):
    """--data's labels: a .csv 'label' column or a .jsonl 'label' field, given for every text or for none
    (a one-line error naming the text otherwise); a .csv needs a 'text' column; labels map to classes."""
    from steward.cli.explain_cmd import _label_ids, _read_texts
    from steward.explain import ExplainError

    rows = [(f"text {i}", str(i % 2)) for i in range(12)]
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    assert _read_texts(str(csv_path), 100) == ([t for t, _ in rows], [y for _, y in rows])
    assert _read_texts(str(csv_path), 10)[1] == [y for _, y in rows[:10]]
    plain = tmp_path / "d.jsonl"
    plain.write_text("".join(json.dumps({"text": t}) + "\n" for t, _ in rows))
    assert _read_texts(str(plain), 100) == ([t for t, _ in rows], None)
    partial = tmp_path / "p.jsonl"
    partial.write_text("".join(json.dumps({"text": t, **({"label": y} if i != 3 else {})}) + "\n"
                               for i, (t, y) in enumerate(rows)))
    with pytest.raises(ExplainError, match="text 4 has no label while others do"):
        _read_texts(str(partial), 100)
    no_text = tmp_path / "n.csv"
    no_text.write_text("body,label\n" + "x,1\n" * 12)
    with pytest.raises(ExplainError, match="no 'text' column"):
        _read_texts(str(no_text), 100)
    assert _label_ids("d", ["yes", " no", "1"], [" no", " yes", "1"]) == [1, 0, 2]
