"""What provenance.json attests (issue 20 item 4): every file the report relies on (config.toml,
metrics.jsonl, summary.json, every checkpoint through its manifest, the fairness and explanation
outputs), and what `steward audit provenance` makes of a change, a deletion or an added file: one
line per problem, exit 1. A later write (explain/) is re-attested through the same signed statement."""

import base64
import json

import pytest

from steward.governance import load_run_ref
from steward.governance.provenance import attest_later_files
from test_governance_run import cli, cli_json, fake_train


def _flip(path):
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF  # always a change (a fixed byte is none when the byte was already that)
    path.write_bytes(bytes(data))


def _subjects(run_dir):
    st = json.loads(base64.b64decode(json.loads((run_dir / "provenance.json").read_text())["payload"]))
    return {s["name"]: s for s in st["subject"]}


def _problems(capsys, run_dir):
    code, out, err = cli(capsys, "audit", "provenance", run_dir)
    assert code == 1 and out == "", err
    lines = err.splitlines()
    assert all(line.startswith("steward audit provenance: FAILED: ") for line in lines), err
    return [line.removeprefix("steward audit provenance: FAILED: ") for line in lines]


@pytest.fixture
def run2(tmp_path):
    """A finished run with checkpoints at steps 2 and 4, and the fairness outputs of a classify run."""
    run_dir = tmp_path / "run"
    (run_dir / "fairness").mkdir(parents=True)
    (run_dir / "fairness" / "report.json").write_text(json.dumps({"overall_auc": 0.9}))
    (run_dir / "fairness" / "predictions.csv").write_text("row_id,label,score\n0,1,0.8\n")
    assert fake_train(run_dir, save_at=(2,))[1] is None
    return run_dir


def test_every_file_the_report_relies_on_is_attested(run2, capsys):
    names = set(_subjects(run2))
    assert {"config.toml", "metrics.jsonl", "summary.json", "fairness/report.json", "fairness/predictions.csv"} <= names
    for step in (2, 4):
        assert {f"checkpoints/step-{step}/{n}" for n in ("manifest.json", "model.bin", "trainer_state.json")} <= names
    # written after provenance.json, or checked elsewhere: the report, the governance folder
    assert not {n for n in names if n.startswith(("report.", "governance/", "provenance"))}
    code, d, err = cli_json(capsys, "audit", "provenance", run2)
    assert code == 0 and d["ok"] and d["problems"] == [] and d["subjects_checked"] == len(names), err
    # excluded: caches and `steward fairness eval`'s folder
    for extra in ("cache/weights-step-4.pt", "fairness/eval/summary.json"):
        (run2 / extra).parent.mkdir(parents=True, exist_ok=True)
        (run2 / extra).write_text("{}")
    assert cli(capsys, "audit", "provenance", run2)[0] == 0


@pytest.mark.parametrize("change, problem", [
    (lambda r: (r / "metrics.jsonl").write_text((r / "metrics.jsonl").read_text().replace('"loss": 5.0', '"loss": 0.5')),
     "subject metrics.jsonl: SHA-256 differs from the attested digest (the file changed)"),
    (lambda r: (r / "summary.json").write_text(json.dumps({**json.loads((r / "summary.json").read_text()),
                                                            "final_val_loss": 0.01})),
     "subject summary.json: SHA-256 differs from the attested digest (the file changed)"),
    (lambda r: _flip(r / "checkpoints" / "step-2" / "model.bin"),
     "subject checkpoints/step-2/model.bin: SHA-256 differs from the attested digest (the file changed)"),
    (lambda r: (r / "checkpoints" / "step-4" / "extra.pt").write_bytes(b"planted"),
     "checkpoints/step-4/extra.pt: in checkpoint checkpoints/step-4 but not in its attested manifest "
     "(added after the checkpoint was saved)"),
    (lambda r: (r / "config.toml").unlink(), "subject config.toml: file is missing"),
    (lambda r: (r / "fairness" / "predictions.csv").write_text("row_id,label,score\n0,1,0.1\n"),
     "subject fairness/predictions.csv: SHA-256 differs from the attested digest (the file changed)"),
], ids=["metrics", "summary", "earlier-checkpoint", "file-added-to-final-checkpoint", "config-deleted",
        "fairness-predictions"])
def test_a_change_is_one_failed_line(run2, capsys, change, problem):
    change(run2)
    assert _problems(capsys, run2) == [problem]
    code, d, _ = cli_json(capsys, "audit", "provenance", run2)
    assert code == 1 and not d["ok"] and d["problems"] == [problem] and d["error"] == problem


def test_several_problems_are_one_line_each(run2, capsys):
    (run2 / "summary.json").unlink()
    (run2 / "checkpoints" / "step-2" / "rng").mkdir()
    (run2 / "checkpoints" / "step-2" / "rng" / "rank-1.pt").write_bytes(b"x")
    other = run2 / "checkpoints" / "step-9"  # a checkpoint that resume or explain would load first
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"files": {}}))
    (run2 / "explain").mkdir()
    (run2 / "explain" / "faithfulness.json").write_text("{}")  # the report would show it
    problems = _problems(capsys, run2)
    assert problems == [
        "subject summary.json: file is missing",
        "explain/faithfulness.json: not attested by provenance.json (written after it)",
        "checkpoints/step-2/rng/rank-1.pt: in checkpoint checkpoints/step-2 but not in its attested manifest "
        "(added after the checkpoint was saved)",
        "checkpoints/step-9: a checkpoint that provenance.json does not attest (added after the run finished)",
    ]
    code, d, _ = cli_json(capsys, "audit", "provenance", run2)
    assert d["error"] == problems[0] + " (and 3 more problems)"
    # the release gate refuses the run with that one line
    code, _, err = cli(capsys, "release", run2)
    assert code == 1 and "provenance.json does not verify: subject summary.json: file is missing (and 3 more" in err


def test_a_manifest_rewritten_before_the_run_ended_is_caught_by_the_log(tmp_path, capsys, monkeypatch):
    """checkpoint.saved recorded the manifest's digest when it was saved; provenance.json attests the
    manifest as it is at the end; the two must agree."""
    import steward.governance.session as session

    real = session.RunGovernance.write_provenance

    def rewrite_then_write(self, checkpoint_dir):
        m = self.run_dir / "checkpoints" / "step-2" / "manifest.json"
        m.write_text(m.read_text().replace('"step": 2', '"step": 2, "note": "edited"'))
        return real(self, checkpoint_dir)

    monkeypatch.setattr(session.RunGovernance, "write_provenance", rewrite_then_write)
    assert fake_train(tmp_path / "run", save_at=(2,))[1] is None
    capsys.readouterr()  # the run's own warnings
    assert _problems(capsys, tmp_path / "run") == [
        "checkpoint checkpoints/step-2: the attested manifest.json differs from the one its checkpoint.saved "
        "entry recorded"]


def test_a_later_write_is_re_attested_through_the_signed_statement(run2, capsys):
    """What `steward explain --global` does after writing explain/: verify, re-sign, record."""
    out = run2 / "explain"
    out.mkdir()
    names = ["explain/rules.json", "explain/rules.txt", "explain/faithfulness.json"]
    for n in names:
        (run2 / n).write_text(f"{n}\n")
    ref = load_run_ref(run2)
    before = (run2 / "provenance.json").read_bytes()
    store = ref.open_store()
    try:
        kw = dict(store=store, run_id=ref.run_id, actor="alice", signer=ref.workspace.signer(),
                  trusted_keys=ref.workspace.trusted_keys([]), producer="steward explain --global")
        assert attest_later_files(run2, names, **kw) == run2 / "provenance.json"
        # once more (explain --global run again, overwriting its files): the old digests are replaced
        (out / "rules.txt").write_text("another rule list\n")
        attest_later_files(run2, names, **kw)
    finally:
        store.close()
    subjects = _subjects(run2)
    assert subjects["explain/rules.txt"]["annotations"] == {"producer": "steward explain --global"}
    assert sum(n.startswith("explain/") for n in subjects) == 3
    code, d, err = cli_json(capsys, "audit", "provenance", run2)
    assert code == 0 and d["log_checked"] and d["subjects_checked"] == len(subjects), err
    assert cli(capsys, "audit", "verify", run2)[0] == 0
    _, log, _ = cli_json(capsys, "audit", "log", run2, "--type", "provenance.written")
    assert [e["payload"].get("producer") for e in log["entries"]] == [None] + ["steward explain --global"] * 2
    # a later edit of a re-attested file fails, as does putting the training's provenance.json back
    _flip(out / "faithfulness.json")
    assert _problems(capsys, run2) == [
        "subject explain/faithfulness.json: SHA-256 differs from the attested digest (the file changed)"]
    (run2 / "provenance.json").write_bytes(before)
    problems = _problems(capsys, run2)
    assert problems[-1].endswith("not the provenance.json whose SHA-256 the audit log recorded last "
                                 "(provenance.written)")
    assert "explain/rules.json: not attested by provenance.json (written after it)" in problems


def test_a_run_that_does_not_verify_is_not_re_attested(run2):
    (run2 / "metrics.jsonl").write_text("")
    (run2 / "explain").mkdir()
    (run2 / "explain" / "rules.json").write_text("{}")
    ref = load_run_ref(run2)
    from steward.governance import GovernanceError

    store = ref.open_store()
    try:
        with pytest.raises(GovernanceError, match=r"provenance.json does not verify, so it is not re-signed to "
                                                  r"attest explain/rules.json: subject metrics.jsonl: SHA-256"):
            attest_later_files(run2, ["explain/rules.json"], store=store, run_id=ref.run_id, actor="alice",
                               signer=ref.workspace.signer(), trusted_keys=ref.workspace.trusted_keys([]),
                               producer="steward explain --global")
    finally:
        store.close()
