"""Approvals that prove who acted, and a release gate the run cannot switch off (issue 20 item 2):
personal keys registered by an admin, approvals signed with them and checked by `audit verify`,
four-eyes by key identity, the workspace's policy at approve and release, provenance.json required."""

import json
import os
import re
from pathlib import Path

import pytest

from _people import ADMIN, act_as, key_path, register_person
from steward.governance.access import load_registry
from steward.governance.approvals import sign_approval
from steward.governance.keys import create_signer, load_signer
from steward.governance.store import AuditStore
from steward.governance.workspace import Workspace
from test_governance_run import cli, cli_json, fake_train

RELEASE_DENIED = "steward release: denied: policy rule 'four-eyes-approval' denied model.release"


@pytest.fixture
def run(tmp_path):
    """alice trains (default policy); bob is a registered approver."""
    run_dir = tmp_path / "run"
    assert fake_train(run_dir)[1] is None
    register_person("alice", "trainer")
    register_person("bob", "approver")
    return run_dir


def _release_as_carol(capsys, monkeypatch, run_dir):
    monkeypatch.setenv("STEWARD_ACTOR", "carol")
    return cli(capsys, "release", run_dir)


def test_keys_create_writes_a_0600_key_once(capsys, tmp_path):
    key = tmp_path / "me" / "personal_key.pem"
    code, d, err = cli_json(capsys, "keys", "create", "--key", key)
    assert code == 0 and d["private_key"] == str(key) and d["public_key"] == str(key.with_suffix(".pub")), err
    assert (key.stat().st_mode & 0o777) == 0o600 and d["key_id"] == load_signer(key).key_id
    assert b"PRIVATE KEY" not in key.with_suffix(".pub").read_bytes()
    code, out, err = cli(capsys, "keys", "create", "--key", key)
    assert code == 2 and out == "" and err.count("\n") == 1 and "already exists" in err, err
    # the default place is the person's own config folder
    code, d, _ = cli_json(capsys, "keys", "create")
    assert d["private_key"] == str(Path(os.environ["XDG_CONFIG_HOME"]) / "steward" / "personal_key.pem")


def test_approving_without_the_key_fails_with_one_line(run, capsys, monkeypatch):
    monkeypatch.setenv("STEWARD_ACTOR", "bob")  # bob's name, but not bob's key (no personal key here)
    code, out, err = cli(capsys, "approve", run)
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert "cannot approve: no personal key for 'bob'" in err and "steward keys create" in err
    assert "steward keys register bob" in err
    # a key that is not bob's registered key
    other = Path(os.environ["XDG_CONFIG_HOME"]) / "steward" / "personal_key.pem"
    create_signer(other)
    code, _, err = cli(capsys, "approve", run)
    assert code == 1 and err.count("\n") == 1 and "is not registered for 'bob'" in err, err
    assert "model.approved" not in json.dumps(cli_json(capsys, "audit", "log", run)[1])


def test_self_approval_under_a_second_made_up_name_fails(run, capsys, monkeypatch, tmp_path):
    """The attacks of the issue: the trainer approving as ROOT, and granting a made-up name a role (or a
    key) to approve as it. Names are free to type; keys are not."""
    act_as(monkeypatch, "alice")
    code, _, err = cli(capsys, "approve", run, "--actor", "ROOT")
    assert code == 1 and "is not registered for 'ROOT'" in err, err
    code, _, err = cli(capsys, "roles", "grant", "ROOT", "approver")
    assert code == 2 and f"only an admin ({ADMIN}) can change roles" in err
    # a second key of her own, registered for ROOT "as the admin": the admin's key must sign that
    second = tmp_path / "second.pem"
    create_signer(second)
    code, _, err = cli(capsys, "keys", "register", "ROOT", second.with_suffix(".pub"), "--actor", ADMIN)
    assert code == 2 and f"{ADMIN!r} holds a registered key" in err, err
    # writing the registration into the store herself, with the workspace's key: it does not take effect,
    # and verification names the entry
    ws = Workspace()
    store = ws.open_store()
    forged = store.append("key.registered", {"actor": "ROOT", "key_id": load_signer(second).key_id,
                                             "public_key": load_signer(second).public_pem, "by": ADMIN},
                          actor=ADMIN, run_id="", signer=ws.signer())
    store.append("role.granted", {"actor": "ROOT", "role": "approver", "by": ADMIN}, actor=ADMIN, run_id="",
                 signer=ws.signer())
    store.close()
    code, _, err = cli(capsys, "audit", "verify", Path(os.environ["STEWARD_WORKSPACE"]) / "audit.db")
    assert code == 1 and f"role registry: entry {forged.seq} (key.registered" in err, err
    assert "holds a registered key but the change is not signed with it" in err
    code, _, err = cli(capsys, "approve", run, "--actor", "ROOT", "--key", second)
    assert code == 1 and "is not registered for 'ROOT'" in err, err
    assert _release_as_carol(capsys, monkeypatch, run)[0] == 1


def test_the_trainers_own_key_cannot_approve_under_another_name(tmp_path, capsys, monkeypatch):
    """alice trains with her personal key at hand (run.started carries it); the same key, registered
    for another name, still cannot approve her run: four-eyes compares keys."""
    monkeypatch.setenv("STEWARD_USER_KEY", str(key_path("alice")))
    run_dir = tmp_path / "run"
    assert fake_train(run_dir, actor="alice-at-training")[1] is None
    _, log, _ = cli_json(capsys, "audit", "log", run_dir, "--type", "run.started")
    assert log["entries"][0]["payload"]["trainer_key"]["key_id"] == load_signer(key_path("alice")).key_id
    register_person("alice", "approver")  # her key, under the name she did not train as
    act_as(monkeypatch, "alice")
    code, _, err = cli(capsys, "approve", run_dir)
    assert code == 1 and "four-eyes principle" in err and "alice-at-training" in err, err
    assert cli(capsys, "audit", "verify", run_dir)[0] == 0


def test_verify_catches_an_approval_not_signed_by_the_registered_key(run, capsys, monkeypatch, tmp_path):
    act_as(monkeypatch, "bob")
    code, d, err = cli_json(capsys, "approve", run)
    assert code == 0 and d["key_id"] == load_signer(key_path("bob")).key_id, err
    assert cli(capsys, "audit", "verify", run)[0] == 0
    # an approval "by bob" appended with the workspace's key (so the log itself verifies), signed with
    # another key that claims to be bob's
    mallory = create_signer(tmp_path / "mallory.pem")
    ws, store = Workspace(), AuditStore(f"sqlite:///{run / 'governance' / 'audit.db'}", create=False)
    run_id = json.loads((run / "governance" / "run.json").read_text())["run_id"]
    fields = sign_approval(mallory, "bob", run_id, None, "")
    fields["approver_key_id"] = d["key_id"]
    forged = store.append("model.approved", {"note": "", "provenance_sha256": None, **fields}, actor="bob",
                          run_id=run_id, signer=ws.signer())
    store.close()
    code, out, err = cli(capsys, "audit", "verify", run)
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"steward audit verify: FAILED: entry {forged.seq} (model.approved, ")
    assert f"signature does not verify with the key {d['key_id'][:16]} registered for 'bob'" in err
    code, _, err = _release_as_carol(capsys, monkeypatch, run)
    assert code == 1 and err.count("\n") == 1 and "the audit log does not verify" in err and "'bob'" in err, err


def test_an_edited_config_policy_none_cannot_release(run, capsys, monkeypatch):
    cfg = run / "config.toml"
    text = cfg.read_text()
    assert re.search(r'^policy = "default"$', text, re.M) and re.search(r"^enforce = true$", text, re.M)
    cfg.write_text(re.sub(r'^policy = "default"$', 'policy = "none"', text, flags=re.M)
                   .replace("enforce = true", "enforce = false"))
    code, out, err = _release_as_carol(capsys, monkeypatch, run)
    assert code == 1 and err.count("\n") == 1 and "provenance.json does not verify" in err and "config.toml" in err
    (run / "provenance.json").unlink()  # and provenance.json deleted too
    code, out, err = _release_as_carol(capsys, monkeypatch, run)
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert "cannot release: " in err and "provenance.json is missing" in err
    assert cli(capsys, "audit", "verify", run)[0] == 0  # the log itself is intact: release refused it anyway


FOUR_EYES_ONLY = """
[policy]
name = "four-eyes-only"
[[rule]]
name = "four-eyes-approval"
stage = "model.release"
expr = 'approvals.exists(a, a.actor != run.actor)'
message = "release needs an approval by someone other than the trainer"
"""


def test_a_deleted_provenance_json_blocks_release(tmp_path, capsys, monkeypatch):
    """Even under a policy with no provenance rule (the run's and the workspace's): release itself needs it."""
    policy = Path(os.environ["STEWARD_WORKSPACE"]) / "policy.toml"
    policy.write_text(FOUR_EYES_ONLY)
    run_dir = tmp_path / "run"
    assert fake_train(run_dir, policy=str(policy))[1] is None
    register_person("bob", "approver")
    act_as(monkeypatch, "bob")
    assert cli(capsys, "approve", run_dir)[0] == 0
    (run_dir / "provenance.json").unlink()
    capsys.readouterr()
    code, out, err = _release_as_carol(capsys, monkeypatch, run_dir)
    assert code == 1 and out == "" and err.count("\n") == 1 and "provenance.json is missing" in err, err


@pytest.mark.parametrize("gov", [{"enforce": False}, {"policy": "none"}])
def test_a_run_trained_without_enforcement_or_policy_still_needs_approval(tmp_path, capsys, monkeypatch, gov):
    run_dir = tmp_path / "run"
    assert fake_train(run_dir, **gov)[1] is None
    code, _, err = _release_as_carol(capsys, monkeypatch, run_dir)
    assert code == 1 and RELEASE_DENIED in err, err
    register_person("bob", "approver")
    act_as(monkeypatch, "bob")
    assert cli(capsys, "approve", run_dir)[0] == 0
    code, _, err = _release_as_carol(capsys, monkeypatch, run_dir)
    assert code == 0, err


TWO_APPROVALS_POLICY = ('[policy]\nname = "ws"\n[[rule]]\nname = "two-approvals"\nstage = "model.release"\n'
                        'expr = "size(approvals) >= 2"\nmessage = "two approvals needed"\n')
"""A workspace policy whose release needs two approvals."""


def test_the_workspace_policy_decides_release(run, capsys, monkeypatch):
    policy = Path(os.environ["STEWARD_WORKSPACE"]) / "policy.toml"
    policy.write_text(TWO_APPROVALS_POLICY)
    act_as(monkeypatch, "bob")
    assert cli(capsys, "approve", run)[0] == 0
    code, _, err = _release_as_carol(capsys, monkeypatch, run)
    assert code == 1 and "policy rule 'two-approvals' denied model.release" in err, err
    _, log, _ = cli_json(capsys, "audit", "log", run, "--type", "policy.decision")
    last = log["entries"][-1]["payload"]
    assert last["policy"]["path"] == str(policy) and last["enforce"] is True


def test_the_report_names_the_keys_that_acted(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STEWARD_USER_KEY", str(key_path("alice")))
    run_dir = tmp_path / "run"
    assert fake_train(run_dir)[1] is None
    register_person("bob", "approver")
    act_as(monkeypatch, "bob")
    assert cli(capsys, "approve", run_dir)[0] == 0
    code, d, err = cli_json(capsys, "report", run_dir)
    assert code == 0, err
    report = json.loads(Path(d["json"]).read_text())
    alice, bob = load_signer(key_path("alice")).key_id, load_signer(key_path("bob")).key_id
    keys = {(k["role"], k["key_id"]): k for k in report["keys"]}
    assert keys[("trainer", alice)]["actor"] == "alice"
    approver = keys[("approver", bob)]
    assert approver["actor"] == "bob" and approver["verified"] is True and approver["registered_for"] == ["bob"]
    assert approver["registered_by"] == [ADMIN]
    assert not approver["trainer_key"]
    ws_key = load_signer(Path(os.environ["STEWARD_WORKSPACE"]) / "keys" / "signing_key.pem").key_id
    assert ("log signer (workspace key)", ws_key) in keys
    assert report["approvals"][0]["key_id"] == bob
    html = Path(d["html"]).read_text()
    assert "Keys that acted" in html and alice in html and bob in html


def test_a_revoked_key_approves_no_more_and_its_earlier_approval_stands(run, capsys, monkeypatch):
    act_as(monkeypatch, "bob")
    assert cli(capsys, "approve", run)[0] == 0
    bob = load_signer(key_path("bob")).key_id
    act_as(monkeypatch, ADMIN)
    code, _, err = cli(capsys, "keys", "revoke", "bob", bob[:12])
    assert code == 0, err
    code, d, _ = cli_json(capsys, "keys", "list")
    assert [k["revoked"] is not None for k in d["keys"] if k["name"] == "bob"] == [True] and d["problems"] == []
    assert cli(capsys, "audit", "verify", run)[0] == 0
    act_as(monkeypatch, "bob")
    code, _, err = cli(capsys, "approve", run)
    assert code == 1 and "is not registered for 'bob'" in err
    with Workspace().open_store() as store:
        assert load_registry(store).key_for("bob", bob) is None


def test_a_workspace_policy_can_require_a_trainer_key(tmp_path, capsys, monkeypatch):
    """run.trainer_key_id (the trainer's key, when its signature over run.started verifies and it is
    registered for the trainer's name) closes the gap of a trainer who trained under a name no key is
    registered for, without their key at hand (tests/test_governance_attacks.py: nor with a fresh key)."""
    policy = Path(os.environ["STEWARD_WORKSPACE"]) / "policy.toml"
    policy.write_text('[policy]\nname = "keyed"\n[[rule]]\nname = "trainer-key"\nstage = "model.approve"\n'
                      'expr = "size(run.trainer_key_id) == 64"\nmessage = "train with your personal key"\n')
    keyless, keyed = tmp_path / "keyless", tmp_path / "keyed"
    assert fake_train(keyless, actor="zed")[1] is None
    register_person("alice", "trainer")  # her key is registered before she trains with it
    monkeypatch.setenv("STEWARD_USER_KEY", str(key_path("alice")))
    assert fake_train(keyed)[1] is None
    register_person("bob", "approver")
    act_as(monkeypatch, "bob")
    code, _, err = cli(capsys, "approve", keyless)
    assert code == 1 and "policy rule 'trainer-key' denied model.approve" in err, err
    code, _, err = cli(capsys, "approve", keyed)
    assert code == 0, err
