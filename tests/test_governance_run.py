"""Governance of a run through GovernanceCallback (driven by a small fake trainer that writes a real
run directory) and the governance commands: verify, log, prove, head, provenance, report, approve,
release, risk, roles."""

import dataclasses
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import types
import uuid
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

import pytest

from _people import act_as, key_path, register_person
from steward.cli.main import main
from steward.config import JobConfig, config_hash, to_toml
from steward.train.callbacks import StopTraining
from steward.train.governance_callback import GovernanceCallback

DENY_STDLIB = """
[policy]
name = "no-stdlib"
[[rule]]
name = "no-stdlib-docs"
stage = "data.ingest"
expr = 'dataset.name != "stdlib-docs"'
message = "stdlib-docs may not be used in this project"
"""


def datasets():
    return [{"source": "stdlib-docs", "kind": "stdlib-docs", "finite": True, "license": "PSF-2.0", "split": split,
             "fingerprint": hashlib.sha256(split.encode()).hexdigest(), "num_documents": 10, "num_tokens": 1000,
             "tokenizer": "byte"} for split in ("train", "validation")]


def fake_train(run_dir: Path, *, steps=4, fail_at=None, actor="alice", final_datasets=None, save_at=(), **gov):
    """Drive the callback as the trainer does (rank-0 hooks, every-rank hooks on rank 0), writing
    config.toml, metrics.jsonl, a checkpoint with manifest.json at each step of `save_at` and at the
    last, and summary.json on the way. Returns (callback, error or None, number of training steps that ran)."""
    cfg = JobConfig()
    cfg.job.out = str(run_dir)
    cfg.governance.actor = actor
    for k, v in gov.items():
        setattr(cfg.governance, k, v)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(to_toml(cfg))
    env = {"python": "3.11", "torch": "2.13", "cuda": None, "devices": ["cpu"], "hosts": ["h0"], "world_size": 1}
    trainer = SimpleNamespace(cfg=cfg, run_dir=run_dir, rank=0, world_size=1, env=env, config_hash=config_hash(cfg))
    if final_datasets is not None:
        trainer.data = SimpleNamespace(datasets=lambda: final_datasets)
    cb = GovernanceCallback(cfg)
    ran = 0
    try:
        cb.on_train_start(trainer)
        cb.on_data(trainer, datasets())
        with open(run_dir / "metrics.jsonl", "w") as f:
            for step in range(1, steps + 1):
                if step == fail_at:
                    raise RuntimeError(f"out of memory at step {step}")
                rec = {"step": step, "loss": 5.0 / step, "lr": 1e-3, "grad_norm": 1.0, "tokens_per_s": 900.0 + step}
                if step % 2 == 0:
                    rec["val_loss"] = 5.2 / step
                    cb.on_eval(trainer, step, {"val_loss": rec["val_loss"]})
                f.write(json.dumps(rec) + "\n")
                ran += 1
                cb.on_step_end(trainer, step, rec)
        for at in sorted({*save_at, steps}):
            ckpt = run_dir / "checkpoints" / f"step-{at}"
            ckpt.mkdir(parents=True)
            (ckpt / "model.bin").write_bytes(os.urandom(256))
            (ckpt / "trainer_state.json").write_text(json.dumps({"step": at}))
            files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(ckpt.iterdir())}
            manifest = {"format": "steward-checkpoint/1", "step": at, "files": files}
            (ckpt / "manifest.json").write_text(json.dumps(manifest))
            cb.on_checkpoint(trainer, at, str(ckpt), manifest)
        summary = {"steps": steps, "initial_loss": 5.0, "final_loss": 5.0 / steps, "final_val_loss": 5.2 / steps,
                   "tokens_per_s": 900.0, "tokens_seen": 4096, "num_params": 1000, "flops_per_token": 6000,
                   "world_size": 1, "final_checkpoint": str(ckpt), "config_hash": trainer.config_hash}
        (run_dir / "summary.json").write_text(json.dumps(summary))
        cb.on_train_end(trainer, summary)
        return cb, None, ran
    except BaseException as e:  # the trainer tells the callbacks, then re-raises
        cb.on_train_failed(trainer, e)
        return cb, e, ran


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def cli_json(capsys, *argv):
    code, out, err = cli(capsys, *argv, "--json")
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    return code, json.loads(lines[0]), err


def types_of(capsys, run_dir, *extra):
    _, d, _ = cli_json(capsys, "audit", "log", run_dir, *extra)
    return [e["type"] for e in d["entries"]]


@pytest.fixture
def run(tmp_path):
    run_dir = tmp_path / "run"
    cb, err, _ = fake_train(run_dir)
    assert err is None, err
    return run_dir


def test_a_run_is_recorded_and_verifies(run, capsys):
    code, d, err = cli_json(capsys, "audit", "verify", run)
    assert code == 0 and d["ok"] and d["entries"] > 10 and d["key_trust"] == "trusted", err
    assert d["heads_checked"] >= 2 and d["published_heads_checked"] >= 2
    seq = types_of(capsys, run)
    assert seq[0] == "run.started" and seq[-2:] == ["run.finished", "provenance.written"]
    assert {"data.ingested", "policy.decision", "eval.completed", "checkpoint.saved"} <= set(seq)
    code, out, _ = cli(capsys, "audit", "verify", run)
    assert code == 0 and out.startswith(f"OK: {d['entries']} entries, root {d['root']}")
    _, log, _ = cli_json(capsys, "audit", "log", run, "--type", "run.started")
    started = log["entries"][0]["payload"]
    assert started["config_sha256"] == config_hash(_cfg_of(run))
    assert started["code"]["version"] and len(started["code"]["package_sha256"]) == 64
    assert started["environment"]["hosts"] == ["h0"]
    assert started["policy"]["name"] == "steward-default" and len(started["policy"]["sha256"]) == 64
    _, log, _ = cli_json(capsys, "audit", "log", run, "--type", "data.ingested")
    ds = log["entries"][0]["payload"]["dataset"]
    assert ds["licenses"] == ["PSF-2.0"] and ds["datasheet"]["known_biases"] and ds["fingerprint"]
    _, log, _ = cli_json(capsys, "audit", "log", run, "--type", "checkpoint.saved")
    ck = log["entries"][0]["payload"]
    assert ck["manifest_sha256"] == hashlib.sha256((run / ck["path"] / "manifest.json").read_bytes()).hexdigest()


def _cfg_of(run_dir):
    from steward.config import load_config

    return load_config(run_dir / "config.toml")


def test_keys_stay_in_the_workspace(run):
    ws = Path(os.environ["STEWARD_WORKSPACE"])
    key = ws / "keys" / "signing_key.pem"
    assert (key.stat().st_mode & 0o777) == 0o600
    secret = key.read_bytes()
    body = b"".join(secret.splitlines()[1:-1])
    for f in run.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert b"PRIVATE KEY" not in data and body not in data, f
    heads = (ws / "heads.jsonl").read_text().splitlines()
    assert len(heads) >= 2 and all(json.loads(h)["signature"] for h in heads)


def test_provenance_verifies_and_catches_changes(run, capsys):
    code, d, _ = cli_json(capsys, "audit", "provenance", run)
    # config.toml, metrics.jsonl, summary.json, and the checkpoint's manifest.json, model.bin, trainer_state.json
    assert code == 0 and d["ok"] and d["subjects_checked"] == 6 and d["config_checked"] and d["log_checked"]
    env = json.loads((run / "provenance.json").read_text())
    st = json.loads(__import__("base64").b64decode(env["payload"]))
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == "https://slsa.dev/provenance/v1"
    bd = st["predicate"]["buildDefinition"]
    assert bd["externalParameters"]["config"]["job"]["out"] == str(run)
    names = [dep["name"] for dep in bd["resolvedDependencies"]]
    assert names[0] == "code:steward" and "dataset:stdlib-docs:train" in names
    # a checkpoint file changed after the run
    model = run / "checkpoints" / "step-4" / "model.bin"
    data = bytearray(model.read_bytes())
    data[0] ^= 0xFF  # always a change (overwriting with a fixed byte is none when the byte was already that)
    model.write_bytes(bytes(data))
    code, out, err = cli(capsys, "audit", "provenance", run)
    assert code == 1 and "subject checkpoints/step-4/model.bin: SHA-256 differs" in err
    # the statement edited (signature no longer matches)
    env["payload"] = __import__("base64").b64encode(json.dumps({**st, "subject": []}).encode()).decode()
    (run / "provenance.json").write_text(json.dumps(env))
    code, out, err = cli(capsys, "audit", "provenance", run)
    assert code == 1 and "no signature verifies with a trusted key" in err


def test_an_edit_of_the_store_is_named(run, capsys):
    db = sqlite3.connect(run / "governance" / "audit.db")
    db.execute("UPDATE steward_entries SET payload = replace(payload, 'PSF-2.0', 'MIT') WHERE seq = 3")
    db.commit()
    db.close()
    code, out, err = cli(capsys, "audit", "verify", run)
    assert code == 1 and out == ""
    assert err.startswith("steward audit verify: FAILED: entry 3 (data.ingested, ") and err.count("\n") == 1
    code, d, _ = cli_json(capsys, "audit", "verify", run)
    assert code == 1 and d["ok"] is False and d["failed_entry"] == 3


def test_a_rollback_after_a_published_head_is_caught_with_against(run, tmp_path, capsys, monkeypatch):
    db = run / "governance" / "audit.db"
    shutil.copy(db, tmp_path / "before.db")
    code, _, err = cli(capsys, "audit", "head", run, "--publish", tmp_path / "published.jsonl")
    assert code == 0, err
    register_person("bob", "approver")
    act_as(monkeypatch, "bob")
    assert cli(capsys, "approve", run)[0] == 0
    shutil.copy(tmp_path / "published.jsonl", tmp_path / "elsewhere.jsonl")
    cli(capsys, "audit", "head", run, "--publish", tmp_path / "elsewhere.jsonl")
    shutil.copy(tmp_path / "before.db", db)  # the store rolled back to before the approval
    # a verifier with neither the workspace nor the published heads sees nothing wrong...
    other = tmp_path / "auditor-workspace"
    code, _, err = cli(capsys, "audit", "verify", run, "--workspace", other,
                       "--public-key", Path(os.environ["STEWARD_WORKSPACE"]) / "keys" / "signing_key.pub")
    assert code == 0, err
    # ...the head published elsewhere catches it
    code, _, err = cli(capsys, "audit", "verify", run, "--workspace", other, "--against", tmp_path / "elsewhere.jsonl")
    assert code == 1 and "truncated or rolled back" in err and "from " in err
    # and the workspace's own heads.jsonl is always compared
    code, _, err = cli(capsys, "audit", "verify", run)
    assert code == 1 and "truncated or rolled back" in err


def _rebuild_under_a_new_log_id(run_dir, tmp_path):
    """What someone holding the workspace's key can do: replay the run's entries, consistently signed,
    into a fresh store (a new log id) with a signed head of its own, and put it where the run's store
    was. Returns (old log id, new log id)."""
    from steward.governance.keys import load_signer
    from steward.governance.store import AuditStore

    db = run_dir / "governance" / "audit.db"
    signer = load_signer(Path(os.environ["STEWARD_WORKSPACE"]) / "keys" / "signing_key.pem")
    old = AuditStore(f"sqlite:///{db}", create=False)
    entries, old_id = old.entries(), old.log_id
    old.close()
    new = AuditStore(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    for e in entries:
        new.append(e.type, e.payload, actor=e.actor, run_id=e.run_id, signer=signer)
    new.sign_head(signer)
    new_id = new.log_id
    new.close()
    shutil.move(tmp_path / "rebuilt.db", db)
    return old_id, new_id


def test_a_log_rebuilt_under_a_new_log_id_is_refused(run, tmp_path, capsys, monkeypatch):
    assert cli(capsys, "audit", "verify", run)[0] == 0  # untouched, the run verifies
    auditor = tmp_path / "auditor.jsonl"  # the heads an auditor copied away before the rebuild
    shutil.copy(Path(os.environ["STEWARD_WORKSPACE"]) / "heads.jsonl", auditor)
    old_id, new_id = _rebuild_under_a_new_log_id(run, tmp_path)
    code, out, err = cli(capsys, "audit", "verify", run)
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"steward audit verify: FAILED: the store holds log {new_id} but governance/run.json "
                          f"names log {old_id}"), err
    monkeypatch.setenv("STEWARD_ACTOR", "bob")  # the gates refuse it too
    code, _, err = cli(capsys, "approve", run)
    assert code == 1 and "the audit log does not verify" in err and new_id in err, err
    # run.json rewritten to name the new log as well: heads.jsonl still holds the old log's heads for this store
    pointer = run / "governance" / "run.json"
    pointer.write_text(pointer.read_text().replace(old_id, new_id))
    code, _, err = cli(capsys, "audit", "verify", run)
    assert code == 1 and err.count("\n") == 1 and old_id in err and new_id in err and "replaced" in err, err
    # `audit head` will not sign a head of a log that does not verify...
    code, _, err = cli(capsys, "audit", "head", run)
    assert code == 1 and "not signing" in err and "replaced" in err, err
    # ...but the key's holder can, and publish it to heads.jsonl: the auditor's copy still knows only the old log
    from steward.governance.store import AuditStore
    from steward.governance.workspace import Workspace

    ws, store = Workspace(), AuditStore(f"sqlite:///{run / 'governance' / 'audit.db'}", create=False)
    ws.publish_head(store.sign_head(ws.signer()), store.display_url)
    store.close()
    code, _, err = cli(capsys, "audit", "verify", run, "--against", auditor)
    assert code == 1 and f"{auditor} holds heads of log {old_id}" in err and "replaced" in err, err


def test_heads_published_with_publish_heads_are_checked(tmp_path, capsys):
    """governance.publish_heads is read back by verify: with heads.jsonl gone and run.json rewritten,
    the copy published elsewhere still shows the log was replaced."""
    run_dir, published = tmp_path / "run", tmp_path / "share" / "heads.jsonl"
    assert fake_train(run_dir, publish_heads=str(published))[1] is None
    old_id, new_id = _rebuild_under_a_new_log_id(run_dir, tmp_path)
    (Path(os.environ["STEWARD_WORKSPACE"]) / "heads.jsonl").unlink()
    pointer = run_dir / "governance" / "run.json"
    pointer.write_text(pointer.read_text().replace(old_id, new_id))
    code, d, err = cli_json(capsys, "audit", "verify", run_dir)
    assert code == 1 and old_id in d["error"] and new_id in d["error"] and "replaced" in err, err
    assert d["published_heads_files"][1:] == [str(published)]


def test_a_denied_dataset_stops_before_step_one(tmp_path, capsys):
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY_STDLIB)
    run_dir = tmp_path / "run"
    cb, err, ran = fake_train(run_dir, policy=str(policy))
    assert isinstance(err, StopTraining) and ran == 0
    assert "policy rule 'no-stdlib-docs' denied data.ingest for dataset stdlib-docs (train)" in err.reason
    assert "stdlib-docs may not be used in this project" in err.reason
    assert not (run_dir / "metrics.jsonl").exists()
    _, log, _ = cli_json(capsys, "audit", "log", run_dir, "--type", "policy.decision")
    d = log["entries"][-1]["payload"]
    assert d["effect"] == "deny" and d["rule"] == "no-stdlib-docs"
    assert d["policy"]["sha256"] == hashlib.sha256(DENY_STDLIB.encode()).hexdigest()
    assert types_of(capsys, run_dir)[-1] == "run.failed"
    assert cli(capsys, "audit", "verify", run_dir)[0] == 0
    assert (run_dir / "report.html").is_file()


def test_enforce_false_records_a_warning_and_goes_on(tmp_path, capsys):
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY_STDLIB)
    cb, err, ran = fake_train(tmp_path / "run", policy=str(policy), enforce=False)
    assert err is None and ran == 4
    _, log, _ = cli_json(capsys, "audit", "log", tmp_path / "run", "--type", "policy.decision")
    assert [e["payload"]["effect"] for e in log["entries"]] == ["warn", "warn"]


def test_a_crash_mid_run_leaves_a_log_that_verifies(tmp_path, capsys):
    run_dir = tmp_path / "run"
    cb, err, ran = fake_train(run_dir, fail_at=3)
    assert isinstance(err, RuntimeError) and ran == 2
    _, log, _ = cli_json(capsys, "audit", "log", run_dir, "--type", "run.failed")
    failed = log["entries"][0]["payload"]
    assert failed["error_type"] == "RuntimeError" and "out of memory at step 3" in failed["message"]
    assert not failed["stopped_by_policy"]
    code, d, _ = cli_json(capsys, "audit", "verify", run_dir)
    assert code == 0 and d["last_head_size"] == d["entries"]
    events = [json.loads(x) for x in (run_dir / "governance" / "openlineage.jsonl").read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    assert "out of memory" in events[1]["run"]["facets"]["errorMessage"]["message"]
    assert json.loads((run_dir / "report.json").read_text())["run"]["status"] == "failed"


def test_openlineage_events(run):
    events = [json.loads(x) for x in (run / "governance" / "openlineage.jsonl").read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    for e in events:
        uuid.UUID(e["run"]["runId"])
        assert e["schemaURL"].startswith("https://openlineage.io/spec/") and e["job"]["namespace"] == "steward"
    assert events[1]["inputs"][0]["facets"]["version"]["datasetVersion"]
    assert events[1]["outputs"][0]["name"].endswith("checkpoints/step-4")


def test_four_eyes_approval_and_release(run, capsys, monkeypatch):
    for name in ("alice", "bob"):
        register_person(name, "approver")
    act_as(monkeypatch, "alice")  # who trained: her own registered key is refused
    code, out, err = cli(capsys, "approve", run)
    assert code == 1 and err.count("\n") == 1, err
    assert "cannot approve: four-eyes principle: key " in err and "speaks for 'alice', who trained the run" in err
    act_as(monkeypatch, "bob")
    code, d, err = cli_json(capsys, "release", run)
    assert code == 1 and d["denied"]["rule"] == "four-eyes-approval"
    code, d, err = cli_json(capsys, "approve", run, "--note", "loss curve and datasheets reviewed")
    assert code == 0 and d["approved"] and d["actor"] == "bob", err
    monkeypatch.setenv("STEWARD_ACTOR", "carol")
    code, d, err = cli_json(capsys, "release", run)
    assert code == 0 and d["released"] and d["checkpoint"] == "checkpoints/step-4", err
    seq = types_of(capsys, run)
    assert seq.count("model.approved") == 1 and seq[-1] == "model.released"
    assert cli(capsys, "audit", "verify", run)[0] == 0
    code, d, _ = cli_json(capsys, "report", run)
    report = json.loads(Path(d["json"]).read_text())
    assert [a["actor"] for a in report["approvals"]] == ["bob"] and report["releases"][0]["actor"] == "carol"


def test_release_refuses_a_changed_checkpoint(run, capsys, monkeypatch):
    register_person("bob", "approver")
    act_as(monkeypatch, "bob")
    assert cli(capsys, "approve", run)[0] == 0
    (run / "checkpoints" / "step-4" / "model.bin").write_bytes(b"swapped")
    code, _, err = cli(capsys, "release", run)
    assert code == 1 and "provenance.json does not verify" in err


def test_roles_gate_approval(run, capsys, monkeypatch):
    monkeypatch.setenv("STEWARD_ACTOR", "root-admin")
    assert cli(capsys, "roles", "grant", "root-admin", "admin")[0] == 0
    assert cli(capsys, "roles", "grant", "dave", "approver")[0] == 0
    # the admin registers their own key, then (signing with it) the others'
    assert cli(capsys, "keys", "register", "root-admin", key_path("root-admin").with_suffix(".pub"),
               "--key", key_path("root-admin"))[0] == 0
    for name in ("dave", "bob"):
        code, _, err = cli(capsys, "keys", "register", name, key_path(name).with_suffix(".pub"),
                           "--key", key_path("root-admin"))
        assert code == 0, err
    act_as(monkeypatch, "dave")
    code, _, err = cli(capsys, "roles", "grant", "dave", "admin")
    assert code == 2 and "only an admin (root-admin) can change roles" in err
    act_as(monkeypatch, "bob")  # not an approver
    code, _, err = cli(capsys, "approve", run)
    assert code == 1 and "approver-role" in err
    act_as(monkeypatch, "dave")
    assert cli(capsys, "approve", run)[0] == 0
    code, d, _ = cli_json(capsys, "roles", "list")
    assert d["roles"] == {"dave": ["approver"], "root-admin": ["admin"]}
    code, _, err = cli(capsys, "roles", "grant", "x", "superuser")
    assert code == 2 and "is not one of trainer, data-steward, approver, auditor, admin" in err
    ws_db = Path(os.environ["STEWARD_WORKSPACE"]) / "audit.db"
    assert cli(capsys, "audit", "verify", ws_db)[0] == 0


def test_risk_register(capsys, monkeypatch):
    code, d, _ = cli_json(capsys, "risk", "list")
    assert code == 0 and len(d["risks"]) == 13
    objectives = {r["objective"] for r in d["risks"]}
    assert {"fairness", "privacy", "security", "safety", "accountability", "robustness",
            "transparency and explainability", "environmental impact"} == objectives
    monkeypatch.setenv("STEWARD_ACTOR", "erin")
    code, d, err = cli_json(capsys, "risk", "add", "--title", "Benchmark contamination inflates scores",
                            "--source", "evaluation data", "--objective", "robustness", "--likelihood", "likely",
                            "--impact", "3", "--treatment-option", "modify", "--treatment", "dedupe eval sets",
                            "--owner", "trainer", "--evidence", "metric:final_val_loss")
    assert code == 0 and d["risk"]["id"] == "R-014" and d["risk"]["level"] == 12 and d["risk"]["rating"] == "high", err
    code, d, _ = cli_json(capsys, "risk", "update", "R-014", "--status", "closed")
    assert code == 0 and d["risk"]["status"] == "closed"
    code, _, err = cli(capsys, "risk", "update", "R-014", "--likelihood", "often")
    assert code == 2 and err.strip().endswith("got 'often'") and "likelihood: must be one of 1 (rare)" in err
    code, _, err = cli(capsys, "risk", "update", "R-099", "--status", "closed")
    assert code == 2 and "no risk 'R-099'" in err
    ws_db = Path(os.environ["STEWARD_WORKSPACE"]) / "audit.db"
    _, log, _ = cli_json(capsys, "audit", "log", ws_db, "--type", "risk.updated")
    assert log["entries"][0]["actor"] == "erin" and log["entries"][0]["payload"]["changed"] == ["status"]
    assert cli(capsys, "audit", "verify", ws_db)[0] == 0


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]

    def handle_data(self, data):
        self.text.append(data)


def test_report_is_self_contained_with_tables_and_charts(run, capsys):
    code, d, _ = cli_json(capsys, "report", run)
    assert code == 0 and d["audit_ok"]
    page = Path(d["html"]).read_text()
    parser = _Tags()
    parser.feed(page)
    text = " ".join(parser.text)
    assert parser.tags.count("svg") == 2 and parser.tags.count("polyline") >= 3
    assert "script" not in parser.tags and parser.urls == []
    for needle in ("Model card", "Intended use", "Training data", "Ethical considerations", "Caveats",
                   "A.5.15", "A.5.33", "A.8.9", "A.8.15", "A.8.16", "A.8.24", "A.8.32",
                   "6.3", "6.4", "6.5", "6.6", "6.7", "Annex IV 5", "Annex XI 1(d)", "Risk register",
                   "Policy decisions", "Audit log verified"):
        assert needle in text, needle
    report = json.loads(Path(d["json"]).read_text())
    assert all(r["verified"] is not False for r in report["iso27001"])
    assert report["audit"]["ok"] and report["provenance"]["ok"]
    assert report["model_card"]["metrics"]["final_val_loss"] == pytest.approx(1.3)
    assert report["datasheets"][0]["datasheet"]["license"] == "PSF-2.0"


def test_a_bad_signing_key_stops_the_run_at_start(tmp_path, monkeypatch):
    key = tmp_path / "team.pem"
    from steward.governance.keys import create_signer

    create_signer(key)
    key.chmod(0o644)
    monkeypatch.setenv("STEWARD_SIGNING_KEY", str(key))
    cb, err, ran = fake_train(tmp_path / "run")
    assert isinstance(err, StopTraining) and ran == 0
    assert "can be read by other users" in err.reason and f"chmod 600 {key}" in err.reason
    key.chmod(0o600)
    cb, err, _ = fake_train(tmp_path / "run2")
    assert err is None
    started = json.loads((tmp_path / "run2" / "governance" / "run.json").read_text())
    assert started["signing_key_id"] == create_signer(key).key_id


def test_one_workspace_store_for_many_runs(tmp_path, capsys):
    for name in ("a", "b"):
        assert fake_train(tmp_path / name, store="workspace")[1] is None
    assert not (tmp_path / "a" / "governance" / "audit.db").exists()
    _, da, _ = cli_json(capsys, "audit", "verify", tmp_path / "a")
    _, db, _ = cli_json(capsys, "audit", "verify", tmp_path / "b")
    assert da["ok"] and da["log_id"] == db["log_id"] and da["entries"] == db["entries"]
    run_a = json.loads((tmp_path / "a" / "governance" / "run.json").read_text())["run_id"]
    _, log, _ = cli_json(capsys, "audit", "log", tmp_path / "a")
    assert {e["run_id"] for e in log["entries"]} == {run_a}


@pytest.mark.postgres
def test_a_run_on_a_postgres_store(tmp_path, pg_url, capsys, monkeypatch):
    assert fake_train(tmp_path / "run", store=pg_url)[1] is None
    pointer = json.loads((tmp_path / "run" / "governance" / "run.json").read_text())
    assert pointer["store"].startswith("postgresql+psycopg://") and ":***@" in pointer["store"]
    password = pg_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    for f in (tmp_path / "run").rglob("*"):  # config.toml included: it holds the URL masked
        if f.is_file():
            assert password.encode() not in f.read_bytes(), f
    # later commands read the masked URL from config.toml: the password comes from the environment
    monkeypatch.setenv("PGPASSWORD", unquote(password))
    code, d, err = cli_json(capsys, "audit", "verify", tmp_path / "run")
    assert code == 0 and d["store"].startswith("postgresql+psycopg://"), err
    code, out, _ = cli(capsys, "audit", "log", tmp_path / "run", "--json")
    assert code == 0 and password not in out and "***" in out
    code, d, err = cli_json(capsys, "audit", "provenance", tmp_path / "run")
    assert code == 0 and d["log_checked"], err


def test_audit_prove_consistency_and_head(run, capsys):
    code, d, _ = cli_json(capsys, "audit", "prove", run, 2)
    assert code == 0 and d["verified"] and d["index"] == 2 and d["entry"]["seq"] == 2
    code, d, _ = cli_json(capsys, "audit", "consistency", run, 3)
    assert code == 0 and d["verified"] and d["old_size"] == 3
    code, _, err = cli(capsys, "audit", "prove", run, 9999)
    assert code == 2 and "N: must be in 0.." in err
    code, d, _ = cli_json(capsys, "audit", "head", run)
    assert code == 0 and d["head"]["tree_size"] > 0 and d["published_to"]
    code, _, err = cli(capsys, "audit", "verify", Path("/nonexistent/run"))
    assert code == 2 and "neither a run directory" in err


def test_mlflow_export_when_installed(tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("mlflow")

    class _Run:
        info = SimpleNamespace(run_id="mlflow-run-1")

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    fake.set_tracking_uri = lambda uri: calls.append(("uri", uri))
    fake.start_run = lambda run_name=None: calls.append(("start", run_name)) or _Run()
    fake.log_params = lambda p: calls.append(("params", len(p)))
    fake.log_metrics = lambda m, step=None: calls.append(("metrics", step, sorted(m)))
    fake.set_tags = lambda t: calls.append(("tags", sorted(t)))
    fake.log_artifact = lambda path: calls.append(("artifact", Path(path).name))
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    assert fake_train(tmp_path / "run", mlflow_uri="file:///tmp/mlruns")[1] is None
    kinds = [c[0] for c in calls]
    assert calls[0] == ("uri", "file:///tmp/mlruns") and "params" in kinds and "tags" in kinds
    assert ("metrics", 2, ["grad_norm", "loss", "lr", "tokens_per_s", "val_loss"]) in calls
    assert {c[1] for c in calls if c[0] == "artifact"} >= {"config.toml", "provenance.json", "report.html"}


def test_disabled_governance_records_nothing(tmp_path):
    cfg = JobConfig()
    cfg.governance.enabled = False
    cb = GovernanceCallback(cfg)
    tr = SimpleNamespace(cfg=cfg, run_dir=tmp_path, rank=0, world_size=1, env={}, config_hash="")
    cb.on_train_start(tr)
    cb.on_data(tr, datasets())
    cb.on_train_end(tr, {})
    assert not (tmp_path / "governance").exists()
    assert dataclasses.asdict(cfg)["governance"]["enabled"] is False


def test_a_stream_records_what_it_actually_read(tmp_path, capsys):
    final = datasets()
    final[0] = {**final[0], "fingerprint": "f" * 64, "records_read": 1234, "num_documents": 1200}
    run_dir = tmp_path / "run"
    assert fake_train(run_dir, final_datasets=final)[1] is None
    _, log, _ = cli_json(capsys, "audit", "log", run_dir, "--type", "data.read")
    read = log["entries"][0]["payload"]["dataset"]
    assert read == {"name": "stdlib-docs", "split": "train", "fingerprint": "f" * 64, "documents": 1200,
                    "tokens": 1000, "records_read": 1234}
    code, d, err = cli_json(capsys, "audit", "provenance", run_dir)
    assert code == 0 and d["log_checked"], err
    st = json.loads(__import__("base64").b64decode(json.loads((run_dir / "provenance.json").read_text())["payload"]))
    deps = {x["name"]: x for x in st["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert deps["dataset:stdlib-docs:train"]["digest"] == {"sha256": "f" * 64}


def test_an_unreachable_store_stops_the_run_with_one_line(tmp_path):
    cb, err, ran = fake_train(tmp_path / "run", store="postgresql+psycopg://u:s3cret@127.0.0.1:1/db")
    assert isinstance(err, StopTraining) and ran == 0
    assert err.reason.startswith("governance: cannot open audit store postgresql+psycopg://u:***@127.0.0.1:1/db")
    assert "s3cret" not in err.reason and "\n" not in err.reason


def test_model_card_prose_from_config(tmp_path, capsys):
    card = tmp_path / "card.toml"
    card.write_text('intended_use = "Research on code completion"\nout_of_scope_use = "Any deployment"\n'
                    'license = "Apache-2.0"\n')
    assert fake_train(tmp_path / "run", model_card=str(card))[1] is None
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    mc = report["model_card"]
    assert mc["intended_use"] == "Research on code completion" and mc["model_details"]["license"] == "Apache-2.0"
    covered = {r["id"]: r["covered"] for r in report["eu_ai_act"]}
    assert covered["Annex XI 1(a)"] == covered["Annex XI 1(b)"] == covered["Annex XI 1(f)"] == "yes"
    card.write_text('intended = "typo"\n')
    from steward.config import ConfigError, load_config
    from steward.train.checks import check_job

    with pytest.raises(ConfigError, match="governance.model_card: unknown key 'intended'"):
        check_job(load_config(None, ["--governance.model_card", str(card)]))


def test_governance_toml_files_missing_or_invalid_name_the_key(tmp_path):
    from steward.governance import GovernanceError
    from steward.governance.datasheets import load_datasheets_file
    from steward.governance.report import load_model_card

    bad = tmp_path / "bad.toml"
    bad.write_text("a = [")
    for load, key in ((load_model_card, "governance.model_card"), (load_datasheets_file, "governance.datasheets")):
        with pytest.raises(GovernanceError, match=f"{key}: no such file"):
            load(str(tmp_path / "none.toml"))
        with pytest.raises(GovernanceError, match=f"{key}: .* is not valid TOML"):
            load(str(bad))
