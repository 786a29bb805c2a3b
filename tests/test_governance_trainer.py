"""Governance on the real trainer: a tiny run is recorded and verifies; a policy that denies the
dataset stops the run before step 1; `steward train` (and 2 local workers) record through the
trainer's default callbacks."""

import json
from pathlib import Path

import pytest

from steward.cli.main import main
from steward.config import load_config
from steward.train.callbacks import StopTraining
from steward.train.governance_callback import GovernanceCallback
from steward.train.trainer import Trainer, default_callbacks

pytestmark = pytest.mark.slow

TINY = [
    "--model.flavor", "debug", "--train.seq_len", "32", "--train.batch_size", "4", "--train.lr", "1e-2",
    "--train.warmup_steps", "1", "--train.steps", "4", "--train.val_every", "2", "--train.val_batches", "1",
    "--data.max_docs", "300", "--train.device", "cpu", "--checkpoint.every", "2",
]
DENY = """
[[rule]]
name = "no-stdlib-docs"
stage = "data.ingest"
expr = 'dataset.name != "stdlib-docs"'
message = "stdlib-docs may not be used in this project"
"""


def wired() -> bool:
    cfg = load_config(None, TINY)
    return any(isinstance(cb, GovernanceCallback) for cb in default_callbacks(cfg))


def steps_run(run_dir: Path) -> list[int]:
    p = run_dir / "metrics.jsonl"
    if not p.exists():
        return []
    return [r["step"] for r in map(json.loads, p.read_text().splitlines()) if "loss" in r]


def test_a_real_run_is_recorded_verified_and_reported(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = load_config(None, [*TINY, "--job.out", str(out)])
    summary = Trainer(cfg, callbacks=[GovernanceCallback(cfg)]).run()
    assert main(["audit", "verify", str(out)]) == 0
    assert main(["audit", "provenance", str(out)]) == 0
    assert main(["audit", "log", str(out), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    log = json.loads(lines[-1])
    types = [e["type"] for e in log["entries"]]
    assert types.count("checkpoint.saved") == 2 and types.count("eval.completed") >= 2
    started = log["entries"][0]["payload"]
    assert started["config_sha256"] == summary["config_hash"]
    assert started["environment"]["world_size"] == 1 and started["environment"]["hosts"]
    ingested = [e["payload"]["dataset"] for e in log["entries"] if e["type"] == "data.ingested"]
    assert {d["split"] for d in ingested} >= {"train"} and all(d["fingerprint"] for d in ingested)
    report = json.loads((out / "report.json").read_text())
    assert report["audit"]["ok"] and report["provenance"]["ok"] and len(report["series"]["loss"]) == 4
    # the energy the steps used, as summary.json has it, and the Annex XI row that cites it
    assert report["energy"] == summary["energy"] and report["energy"]["energy_j"] > 0
    annex = {r["id"]: r for r in report["eu_ai_act"]}["Annex XI 2(e)"]
    assert annex["covered"] == ("yes" if summary["energy"]["measured"] else "partly")
    assert "summary.json energy" in annex["where"]
    html = (out / "report.html").read_text()
    assert "<h2>Energy</h2>" in html and summary["energy"]["source"] in html


def test_a_denied_dataset_stops_the_real_trainer_before_step_one(tmp_path, capsys):
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY)
    out = tmp_path / "run"
    cfg = load_config(None, [*TINY, "--job.out", str(out), "--governance.policy", str(policy)])
    with pytest.raises(StopTraining, match="policy rule 'no-stdlib-docs' denied data.ingest .*may not be used"):
        Trainer(cfg, callbacks=[GovernanceCallback(cfg)]).run()
    assert steps_run(out) == []
    assert main(["audit", "log", str(out), "--type", "policy.decision", "--json"]) == 0
    decision = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["entries"][-1]["payload"]
    assert decision["effect"] == "deny" and decision["rule"] == "no-stdlib-docs"
    assert main(["audit", "verify", str(out)]) == 0


@pytest.mark.skipif(not wired(), reason="trainer.default_callbacks does not add GovernanceCallback yet")
def test_steward_train_records_and_a_denial_exits_non_zero(tmp_path, capfd):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--job.out", str(out)]) == 0
    assert main(["audit", "verify", str(out)]) == 0
    assert (out / "report.html").is_file() and (out / "provenance.json").is_file()
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY)
    denied = tmp_path / "denied"
    code = main(["train", *TINY, "--job.out", str(denied), "--governance.policy", str(policy)])
    err = capfd.readouterr().err
    assert code != 0 and "no-stdlib-docs" in err and "may not be used" in err
    assert steps_run(denied) == []


@pytest.mark.skipif(not wired(), reason="trainer.default_callbacks does not add GovernanceCallback yet")
def test_two_workers_record_once_from_rank_zero(tmp_path, capsys):
    from steward.jobs import launch_local

    out = tmp_path / "run"
    launch_local(None, [*TINY, "--job.out", str(out), "--train.threads", "1", "--parallel.dp_replicate", "2"], nproc=2)
    assert main(["audit", "log", str(out), "--json"]) == 0
    log = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    types = [e["type"] for e in log["entries"]]
    assert types.count("run.started") == 1 and types.count("run.finished") == 1
    assert log["entries"][0]["payload"]["environment"]["world_size"] == 2
    assert main(["audit", "verify", str(out)]) == 0
    # rank 0 writes each step's energy of both ranks (summed by an all-reduce); the total is their sum
    rows = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    summary = json.loads((out / "summary.json").read_text())
    assert len(rows) == 4 and all(r["energy_j"] > 0 for r in rows)
    assert summary["energy"]["energy_j"] == sum(r["energy_j"] for r in rows)


def test_a_real_run_writes_no_store_credential_anywhere(tmp_path, capfd):
    """`steward train` with credentials in the store URL (SQLite ignores them): not one file of the run,
    the workspace or the store, nor any output of training and of the commands that read it, holds them."""
    import os
    from urllib.parse import quote

    from test_governance_credentials import commands_output, leaks, secret_forms

    secrets = ("Pa/ss@w:rd%x9", "tok-Zk9-77")
    store = tmp_path / "shared" / "audit.db"
    url = f"sqlite:///{store}?password={quote(secrets[0], safe='')}&sslpassword={secrets[1]}"
    out = tmp_path / "run"
    code = main(["train", *TINY, "--train.steps", "2", "--train.threads", "1", "--job.out", str(out),
                 "--governance.store", url])
    trained = capfd.readouterr()
    assert code == 0, trained.err
    outs, codes = commands_output(capfd, out)
    assert codes == [0] * len(codes), outs
    assert "password=***&sslpassword=***" in (out / "config.toml").read_text()
    workspace = Path(os.environ["STEWARD_WORKSPACE"])
    assert leaks(secret_forms(*secrets), [out, workspace, store.parent], *trained, *outs) == []
