"""Attacks on the personal keys, approvals and release gate of issue 20 item 2, as a hostile trainer
and a careless user would try them: each either fails with one line, or is caught by `audit verify`
and not counted by release."""

import json
import os
import sqlite3
from pathlib import Path

import pytest

import test_governance_keys
from _people import ADMIN, act_as, key_path, register_person
from steward.governance.access import load_registry
from steward.governance.keys import create_signer, load_signer
from steward.governance.provenance import attest_later_files
from steward.governance.store import AuditStore
from steward.governance.workspace import Workspace
from test_governance_keys import RELEASE_DENIED, TWO_APPROVALS_POLICY, _release_as_carol
from test_governance_run import cli, fake_train

run = test_governance_keys.run  # the fixture: alice trained (default policy), bob is a registered approver

# an SM2 key pair (openssl genpkey -algorithm SM2): valid PEM of a curve `cryptography` does not support
SM2_PUBLIC = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAECHRGErg/DLHIBQyYzCNfpz9lN5Tk
Tg4GOW9kI6F/B9BpTCJtaejT0LlYzJP/QL359aRANIY9hbELaZ0LzWtE2A==
-----END PUBLIC KEY-----
"""
SM2_PRIVATE = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqBHM9VAYItBG0wawIBAQQgiAMYoqs0CRelUxAg
OcFiFVwyRs1XNLL7yekUT0/AHQ+hRANCAAQIdEYSuD8MscgFDJjMI1+nP2U3lORO
DgY5b2QjoX8H0GlMIm1p6NPQuVjMk/9Avfn1pEA0hj2FsQtpnQvNa0TY
-----END PRIVATE KEY-----
"""


def _one_line(err: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err


def test_a_deleted_revocation_row_does_not_bring_a_revoked_key_back(run, capsys, monkeypatch):
    """bob's key is revoked; deleting the key.revoked row from the workspace's SQLite file (no key needed)
    must not let his next approval count: the registry is read only from a workspace store that verifies."""
    act_as(monkeypatch, ADMIN)
    assert cli(capsys, "keys", "revoke", "bob", load_signer(key_path("bob")).key_id[:12])[0] == 0
    db = Path(os.environ["STEWARD_WORKSPACE"]) / "audit.db"
    with sqlite3.connect(db) as c:
        assert c.execute("DELETE FROM steward_entries WHERE type = 'key.revoked'").rowcount == 1
    act_as(monkeypatch, "bob")
    code, out, err = cli(capsys, "approve", run)
    assert code == 1 and out == "" and _one_line(err), err
    assert "the workspace store" in err and "does not verify" in err and "entries" in err
    code, out, err = cli(capsys, "audit", "verify", run)
    assert code == 1 and _one_line(err) and "workspace store" in err, err
    code, _, err = _release_as_carol(capsys, monkeypatch, run)
    assert code == 1 and _one_line(err) and "workspace store" in err, err


def test_a_fresh_key_at_training_does_not_satisfy_a_trainer_key_rule(tmp_path, capsys, monkeypatch):
    """The README's fix for a trainer who trains under a name not theirs: a model.approve rule
    `size(run.trainer_key_id) == 64`. mallory (an approver) trains as alice with a key she just made
    (registered for nobody), then approves as herself: the rule must deny it."""
    policy = Path(os.environ["STEWARD_WORKSPACE"]) / "policy.toml"
    policy.write_text('[policy]\nname = "keyed"\n[[rule]]\nname = "trainer-key"\nstage = "model.approve"\n'
                      'expr = "size(run.trainer_key_id) == 64"\nmessage = "train with your personal key"\n')
    register_person("alice", "trainer")
    register_person("mallory", "approver")
    fresh = tmp_path / "fresh.pem"
    create_signer(fresh)
    monkeypatch.setenv("STEWARD_USER_KEY", str(fresh))
    run_dir = tmp_path / "run"
    assert fake_train(run_dir, actor="alice")[1] is None
    act_as(monkeypatch, "mallory")
    code, _, err = cli(capsys, "approve", run_dir)
    assert code == 1 and "policy rule 'trainer-key' denied model.approve" in err, err


def _resign_provenance(run_dir: Path) -> None:
    """What `steward explain RUN_DIR --global` does after an approval (or anyone with the workspace key):
    provenance.json re-signed with other contents, and provenance.written recorded again."""
    (run_dir / "explain").mkdir()
    (run_dir / "explain" / "rules.json").write_text('{"rules": []}\n')
    ws = Workspace()
    run_id = json.loads((run_dir / "governance" / "run.json").read_text())["run_id"]
    with AuditStore(f"sqlite:///{run_dir / 'governance' / 'audit.db'}", create=False) as store:
        assert attest_later_files(run_dir, ["explain/rules.json"], store=store, run_id=run_id, actor="alice",
                                  signer=ws.signer(), trusted_keys=ws.trusted_keys(), producer="test") is not None


def test_an_approval_counts_only_for_the_provenance_it_signed(run, capsys, monkeypatch):
    act_as(monkeypatch, "bob")
    assert cli(capsys, "approve", run)[0] == 0
    _resign_provenance(run)
    assert cli(capsys, "audit", "provenance", run)[0] == 0 and cli(capsys, "audit", "verify", run)[0] == 0
    code, _, err = _release_as_carol(capsys, monkeypatch, run)
    assert code == 1 and RELEASE_DENIED in err, err
    act_as(monkeypatch, "bob")  # bob approves what is there now
    assert cli(capsys, "approve", run)[0] == 0
    code, _, err = _release_as_carol(capsys, monkeypatch, run)
    assert code == 0, err


def test_one_key_approving_twice_is_one_approval(run, capsys, monkeypatch):
    policy = Path(os.environ["STEWARD_WORKSPACE"]) / "policy.toml"
    policy.write_text(TWO_APPROVALS_POLICY)
    act_as(monkeypatch, "bob")
    assert cli(capsys, "approve", run)[0] == 0
    assert cli(capsys, "approve", run, "--note", "really")[0] == 0
    code, _, err = _release_as_carol(capsys, monkeypatch, run)
    assert code == 1 and "policy rule 'two-approvals' denied model.release" in err, err
    register_person("dave", "approver")
    act_as(monkeypatch, "dave")
    assert cli(capsys, "approve", run)[0] == 0
    code, _, err = _release_as_carol(capsys, monkeypatch, run)
    assert code == 0, err


def test_a_pem_of_an_unsupported_key_type_is_one_line(run, capsys, monkeypatch, tmp_path):
    pub, priv = tmp_path / "sm2.pub", tmp_path / "sm2.pem"
    pub.write_text(SM2_PUBLIC)
    priv.write_text(SM2_PRIVATE)
    priv.chmod(0o600)
    act_as(monkeypatch, ADMIN)
    code, out, err = cli(capsys, "keys", "register", "zed", pub)
    assert code == 2 and out == "" and _one_line(err) and str(pub) in err and "not supported" in err, err
    code, out, err = cli(capsys, "audit", "verify", run, "--public-key", pub)
    assert code == 2 and _one_line(err) and str(pub) in err, err
    act_as(monkeypatch, "bob")
    code, out, err = cli(capsys, "approve", run, "--key", priv)
    assert code == 1 and _one_line(err) and f"cannot approve: signing key {priv}" in err, err


def test_a_key_or_workspace_where_no_folder_can_be_made_is_one_line(capsys, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    code, out, err = cli(capsys, "keys", "create", "--key", a_file / "personal_key.pem")
    assert code == 2 and out == "" and _one_line(err) and str(a_file) in err, err
    code, out, err = cli(capsys, "keys", "list", "--workspace", a_file / "ws")
    assert code == 2 and out == "" and _one_line(err) and str(a_file / "ws") in err, err


def test_a_workspace_policy_that_is_not_a_file_does_not_fall_back_to_the_default(run, capsys, monkeypatch, tmp_path):
    """A policy.toml the admin linked to a share that is gone (or a folder) is an error, not the default pack."""
    (Path(os.environ["STEWARD_WORKSPACE"]) / "policy.toml").symlink_to(tmp_path / "unmounted" / "policy.toml")
    act_as(monkeypatch, "bob")
    code, out, err = cli(capsys, "approve", run)
    assert code == 2 and out == "" and _one_line(err) and "policy.toml" in err, err
    assert "model.approved" not in json.dumps(cli(capsys, "audit", "log", run, "--json")[1])


def _append_copy(store: AuditStore, entry) -> int:
    """A registry change appended again, as it was signed, with the workspace's key (which a trainer holds)."""
    ws = Workspace()
    new = store.append(entry.type, entry.payload, actor=entry.actor, run_id="", signer=ws.signer())
    ws.publish_head(store.sign_head(ws.signer()), store.display_url)
    return new.seq


def test_a_replayed_key_registration_does_not_undo_a_revocation(run, capsys, monkeypatch):
    """bob's key is revoked; appending the admin's signed registration of it again (a consistent, signed log)
    must not register it again: a signed change takes effect once."""
    bob = load_signer(key_path("bob")).key_id
    act_as(monkeypatch, ADMIN)
    assert cli(capsys, "keys", "revoke", "bob", bob[:12])[0] == 0
    with Workspace().open_store() as store:
        original = next(e for e in store.entries(types=["key.registered"]) if e.payload["actor"] == "bob")
        replayed = _append_copy(store, original)
    code, _, err = cli(capsys, "audit", "verify", Path(os.environ["STEWARD_WORKSPACE"]) / "audit.db")
    assert code == 1 and f"role registry: entry {replayed} (key.registered" in err, err
    assert f"repeats the signed change of entry {original.seq} (replayed)" in err
    act_as(monkeypatch, "bob")
    code, _, err = cli(capsys, "approve", run)
    assert code == 1 and "is not registered for 'bob'" in err, err


def test_a_signed_change_from_another_workspace_does_not_take_effect(run, capsys, monkeypatch, tmp_path):
    """The same admin (same personal key) runs a second workspace; a change they signed there, appended to
    this workspace's store, is not a change they made here."""
    first = os.environ["STEWARD_WORKSPACE"]
    monkeypatch.setenv("STEWARD_WORKSPACE", str(tmp_path / "other"))
    register_person("mallory", "approver")  # in the other workspace, signed by ADMIN's key
    with Workspace().open_store() as store:
        grant = next(e for e in store.entries(types=["role.granted"]) if e.payload["actor"] == "mallory")
    monkeypatch.setenv("STEWARD_WORKSPACE", first)
    register_person("mallory", "trainer")
    with Workspace().open_store() as store:
        replayed = _append_copy(store, grant)
    code, _, err = cli(capsys, "audit", "verify", Path(first) / "audit.db")
    assert code == 1 and f"role registry: entry {replayed} (role.granted" in err, err
    with Workspace().open_store() as store:
        assert load_registry(store).roles["mallory"] == {"trainer"}


def test_text_that_is_not_utf8_is_one_line(run, capsys, monkeypatch):
    """Bytes the locale cannot decode reach Python as lone surrogates (`--note $'\\xff'` in a shell)."""
    act_as(monkeypatch, "bob")
    code, out, err = cli(capsys, "approve", run, "--note", "ok\udcff")
    assert code == 2 and out == "" and _one_line(err) and "note: not valid UTF-8 text" in err, err
    act_as(monkeypatch, ADMIN)
    code, out, err = cli(capsys, "keys", "register", "bo\udcffb", key_path("bob").with_suffix(".pub"))
    assert code == 2 and out == "" and _one_line(err) and "who: not valid UTF-8 text" in err, err


def test_the_workspace_key_cannot_be_registered_as_a_persons_key(run, capsys, monkeypatch):
    """A careless admin registering WORKSPACE/keys/signing_key.pub for bob would let every trainer (who
    holds the workspace key) approve as bob."""
    act_as(monkeypatch, ADMIN)
    code, out, err = cli(capsys, "keys", "register", "bob", Path(os.environ["STEWARD_WORKSPACE"]) / "keys" /
                         "signing_key.pub")
    assert code == 2 and out == "" and _one_line(err) and "is the workspace's signing key" in err, err


@pytest.mark.parametrize("name", ["mallory\nbob approved", "x\ry", "tab\tname", " bob", "a" * 129, ""])
def test_a_name_that_could_fake_a_listing_line_is_one_line(run, capsys, monkeypatch, name):
    """A role, a key or an actor whose name holds a control character (or surrounding spaces, or is too long)
    is refused with one line, before anything is recorded: a newline in a name could fake extra lines of
    `roles list` or `audit log`."""
    act_as(monkeypatch, ADMIN)
    before = len(load_registry(AuditStore(Workspace().store_url)).roles)
    code, out, err = cli(capsys, "roles", "grant", name, "approver")
    assert code != 0 and out == "" and _one_line(err), err
    assert len(load_registry(AuditStore(Workspace().store_url)).roles) == before
    code, out, err = cli(capsys, "keys", "register", name, str(key_path("bob")) + ".pub")
    assert code != 0 and _one_line(err), err
    if name:  # an empty --actor means "the default actor"
        code, out, err = cli(capsys, "approve", run, "--actor", name)
        assert code != 0 and _one_line(err) and "--actor" in err, err
    monkeypatch.setenv("STEWARD_ACTOR", "bob\nalice")
    code, out, err = cli(capsys, "approve", run)
    assert code != 0 and _one_line(err) and "STEWARD_ACTOR" in err, err


def test_listings_of_an_edited_workspace_store_say_it_does_not_verify(run, capsys, monkeypatch):
    """`keys list` and `roles list` read the registry; after a row is deleted from the store's file they
    still list it, but exit 1 with one warning line and "verified": false, instead of showing it as evidence."""
    act_as(monkeypatch, ADMIN)
    for command in (("keys", "list"), ("roles", "list")):
        code, out, err = cli(capsys, *command, "--json")
        assert code == 0 and json.loads(out)["verified"] is True and json.loads(out)["problem"] == "", err
    assert cli(capsys, "keys", "revoke", "bob", load_signer(key_path("bob")).key_id[:12])[0] == 0
    db = Path(os.environ["STEWARD_WORKSPACE"]) / "audit.db"
    with sqlite3.connect(db) as c:
        assert c.execute("DELETE FROM steward_entries WHERE type = 'key.revoked'").rowcount == 1
    for command in (("keys", "list"), ("roles", "list")):
        code, out, err = cli(capsys, *command, "--json")
        d = json.loads(out)
        assert code == 1 and d["verified"] is False and "does not verify" in d["problem"], (out, err)
        assert _one_line(err) and "warning" in err, err
    code, out, err = cli(capsys, "keys", "list")
    assert code == 1 and "bob:" in out and "revoked" not in out and _one_line(err)
