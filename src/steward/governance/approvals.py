"""Approvals signed by the approver's own key, and the key that speaks for a run's trainer.

A model.approved entry carries `approver_key_id`, `signed_at` and `approval_signature`: the
approver's Ed25519 signature, made with their personal key (`steward keys create`), over the
approver's name, the run id, the provenance digest, the decision, the time and the note. It counts
only when that key was registered for the approver's name in the workspace registry (access.py) when
the approval was recorded, and the signature verifies with it. Names are self-asserted; keys are not:
four-eyes compares the approver's key with the trainer's keys (the personal key that signed
run.started, when the trainer had one, and every key registered for the trainer's name), so one
person acts as two only by holding two registered keys, which an admin registered in the log.
"""

from __future__ import annotations

from typing import Any

from steward.governance._util import GovernanceError, canonical_json, utc_now
from steward.governance.access import Registry
from steward.governance.keys import (
    Signer,
    key_id,
    load_public_key,
    personal_key_path,
    public_key_file,
    verify_signature,
)
from steward.governance.store import AuditStore

APPROVAL_DOMAIN = b"steward-approval-v1\n"
RUN_START_DOMAIN = b"steward-run-start-v1\n"


def approval_message(actor: str, run_id: str, provenance_sha256: Any, time: str, note: str) -> bytes:
    """What an approval's signature covers."""
    return APPROVAL_DOMAIN + canonical_json({"actor": actor, "decision": "approved", "note": note, "run_id": run_id,
                                             "provenance_sha256": provenance_sha256, "time": time})


def _run_start_message(actor: str, run_id: str, config_sha256: str, time: str) -> bytes:
    return RUN_START_DOMAIN + canonical_json({"actor": actor, "config_sha256": config_sha256, "run_id": run_id,
                                              "time": time})


def _sig(value: Any) -> bytes:
    try:
        return bytes.fromhex(str(value))
    except ValueError:
        return b""


def sign_approval(signer: Signer, actor: str, run_id: str, provenance_sha256: Any, note: str) -> dict[str, Any]:
    """The fields a model.approved payload adds: the key id, the time signed, the signature."""
    t = utc_now()
    sig = signer.sign(approval_message(actor, run_id, provenance_sha256, t, note))
    return {"approver_key_id": signer.key_id, "signed_at": t, "approval_signature": sig.hex()}


def trainer_key(signer: Signer, actor: str, run_id: str, config_sha256: str) -> dict[str, Any]:
    """run.started's `trainer_key`: the trainer's personal public key and its signature over the run's start."""
    t = utc_now()
    return {"key_id": signer.key_id, "public_key": signer.public_pem, "signed_at": t,
            "signature": signer.sign(_run_start_message(actor, run_id, config_sha256, t)).hex()}


def run_start_problem(run_id: str, started: dict[str, Any]) -> str:
    """Why run.started's trainer_key does not prove its holder started the run ('' when it does or is absent)."""
    tk = started.get("trainer_key")
    if not tk:
        return ""
    try:
        pub = load_public_key(str(tk.get("public_key", "")), "trainer_key")
    except GovernanceError as e:
        return str(e)
    msg = _run_start_message(str(started.get("actor", "")), run_id, str(started.get("config_sha256", "")),
                             str(tk.get("signed_at", "")))
    if key_id(pub) != tk.get("key_id") or not verify_signature(pub, msg, _sig(tk.get("signature"))):
        return f"run.started of run {run_id}: the trainer's key signature does not verify"
    return ""


def registered_trainer_key(reg: Registry, run_id: str, started: dict[str, Any]) -> str:
    """The id of the key that signed run.started, when its signature verifies and it was registered for
    the trainer's name when the run started; '' otherwise (a key made for the occasion, or none, proves
    nothing about who trained)."""
    kid = str((started.get("trainer_key") or {}).get("key_id", ""))
    if not kid or run_start_problem(run_id, started):
        return ""
    return kid if reg.key_for(str(started.get("actor", "")), kid, at=str(started.get("time", ""))) else ""


def approval_problem(reg: Registry, run_id: str, actor: str, time: str, payload: dict[str, Any]) -> str:
    """Why an approval by `actor`, recorded at `time`, is not signed by a key registered for `actor` ('' if it is)."""
    kid = str(payload.get("approver_key_id", ""))
    if not kid or not payload.get("approval_signature"):
        return f"the approval by {actor!r} is not signed with a personal key"
    key = reg.key_for(actor, kid, at=time)
    if key is None:
        return (f"the approval by {actor!r} is signed with key {kid[:16]}, which was not registered for {actor!r} in "
                "the workspace registry at the time")
    msg = approval_message(actor, run_id, payload.get("provenance_sha256"), str(payload.get("signed_at", "")),
                           str(payload.get("note", "")))
    if not verify_signature(key.public_key, msg, _sig(payload.get("approval_signature"))):
        return f"the approval by {actor!r}: signature does not verify with the key {kid[:16]} registered for {actor!r}"
    return ""


def trainer_keys(reg: Registry, started: dict[str, Any]) -> set[str]:
    """Key ids that speak for the trainer: the key that signed run.started, every key registered for their name."""
    ids = {k.key_id for k in reg.keys if k.name == started.get("actor")}
    tk = started.get("trainer_key") or {}
    if tk.get("key_id"):
        ids.add(str(tk["key_id"]))
    return ids


def store_problem(store: AuditStore, reg: Registry) -> tuple[str, int | None]:
    """The first run.started or model.approved entry of `store` whose personal signature does not verify
    against the registry `reg` (message, entry), else ('', None)."""
    for e in store.entries(types=["run.started", "model.approved"]):
        why = (run_start_problem(e.run_id, {**e.payload, "actor": e.actor}) if e.type == "run.started"
               else approval_problem(reg, e.run_id, e.actor, e.time, e.payload))
        if why:
            return f"{e.label()}: {why}", e.seq
    return "", None


def signed_approvals(reg: Registry, facts: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's approvals (from run_facts), each with its key id, whether its signature verifies
    against the registry (`verified`) and whether its key speaks for the trainer (`trainer_key`)."""
    started = facts.get("started") or {}
    theirs = trainer_keys(reg, started)
    out = []
    for a in facts["approvals"]:
        why = approval_problem(reg, facts["run_id"], str(a.get("actor", "")), str(a.get("time", "")), a)
        kid = str(a.get("approver_key_id", ""))
        out.append({**a, "key_id": kid, "verified": not why, "problem": why, "trainer_key": kid in theirs})
    return out


def approver_key_check(reg: Registry, signer: Signer, actor: str, facts: dict[str, Any]) -> str:
    """Why `signer` may not approve the run as `actor` ('' when it may): the key must be registered for
    `actor`, and must not speak for the trainer."""
    if reg.key_for(actor, signer.key_id) is None:
        path = signer.path or personal_key_path()
        return (f"the personal key {signer.key_id[:16]} ({path}) is not registered for {actor!r} in the workspace "
                f"registry; an admin registers it with `steward keys register {actor} {public_key_file(path)}`")
    started = facts.get("started") or {}
    if signer.key_id in trainer_keys(reg, started):
        return (f"four-eyes principle: key {signer.key_id[:16]} speaks for {started.get('actor')!r}, who trained "
                "the run (it signed run.started or is registered for that name); another person must approve")
    return ""
