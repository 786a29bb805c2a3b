"""The role registry (ISO/IEC 27001 A.5.15 access control, A.5.16 identity): who may train, steward
data, approve, audit, administer, and which personal Ed25519 key speaks for whom.

The registry lives in the workspace store as audit events (role.granted, role.revoked,
key.registered, key.revoked); its state is the replay of those events, checking each change's
authority as it goes:

- once someone holds 'admin', only an admin changes roles or keys (before that, any actor may change
  roles: recorded as bootstrap);
- only an admin registers or revokes a key; an admin with no registered key may register only their
  own first key;
- a change made by someone who holds a registered key carries their signature over the change and
  the store's log id (made with their personal key, which never leaves their own machine); a signed
  change takes effect once: an entry that repeats it (replayed, to register a revoked key again, or
  from another workspace's log) does not.

A change that breaks these rules does not take effect, and `problems` names it: `audit verify`
fails on it. So whoever can append to the store with the workspace key, but lacks an admin's
personal key, cannot register a key for a name or grant a role once that admin holds a key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from steward.governance._util import GovernanceError, canonical_json, check_name, utc_now
from steward.governance.keys import (
    Signer,
    key_id,
    load_public_key,
    personal_key_path,
    public_pem,
    verify_signature,
)
from steward.governance.store import AuditStore, Entry

ROLES = ("trainer", "data-steward", "approver", "auditor", "admin")
ROLE_EVENTS = ("role.granted", "role.revoked")
KEY_EVENTS = ("key.registered", "key.revoked")
REGISTRY_EVENTS = ROLE_EVENTS + KEY_EVENTS
CHANGE_DOMAIN = b"steward-registry-change-v2\n"


@dataclass
class RegisteredKey:
    name: str
    key_id: str
    public_key: Any
    registered: str
    by: str
    seq: int
    revoked: str | None = None

    def active_at(self, time: str) -> bool:
        """Registered when `time` (an ISO timestamp) was, and not yet revoked."""
        return self.registered <= time and (self.revoked is None or time < self.revoked)


@dataclass
class Registry:
    roles: dict[str, set[str]] = field(default_factory=dict)
    keys: list[RegisteredKey] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Registry entries that broke the rules above (they did not take effect)."""
    signed_changes: dict[str, int] = field(default_factory=dict)
    """The signature of each signed change that took effect -> its entry."""

    def role_map(self) -> dict[str, list[str]]:
        return {a: sorted(r) for a, r in sorted(self.roles.items()) if r}

    def admins(self) -> list[str]:
        return sorted(a for a, r in self.roles.items() if "admin" in r)

    def active_keys(self, name: str) -> list[RegisteredKey]:
        return [k for k in self.keys if k.name == name and k.revoked is None]

    def key_for(self, name: str, key_id: str, at: str | None = None) -> RegisteredKey | None:
        """The key `key_id` as registered for `name` (at time `at`, else now)."""
        for k in self.keys:
            if k.name == name and k.key_id == key_id and (k.active_at(at) if at else k.revoked is None):
                return k
        return None

    def names_of(self, key_id: str) -> list[str]:
        """Every name `key_id` was ever registered for."""
        return sorted({k.name for k in self.keys if k.key_id == key_id})


def change_message(type: str, payload: dict[str, Any], log_id: str) -> bytes:
    """What the signature of a registry change covers: the event type, its payload (less the signature)
    and the log it is made in."""
    body = {k: v for k, v in payload.items() if k != "by_signature"}
    return CHANGE_DOMAIN + canonical_json({"type": type, "payload": body, "log_id": log_id})


def _authority(reg: Registry, e: Entry, log_id: str) -> str:
    """Why entry `e` may not change the registry as it stands ('' when it may)."""
    p, by = e.payload, str(e.payload.get("by", ""))
    admins = reg.admins()
    if admins and by not in admins:
        return f"{by!r} changed the registry but is not an admin ({', '.join(admins)})"
    by_keys = reg.active_keys(by)
    if by_keys:
        key = next((k for k in by_keys if k.key_id == p.get("by_key_id")), None)
        try:
            sig = bytes.fromhex(str(p.get("by_signature", "")))
        except ValueError:
            sig = b""
        if key is None or not verify_signature(key.public_key, change_message(e.type, p, log_id), sig):
            return f"{by!r} holds a registered key but the change is not signed with it (in this log)"
        if p["by_signature"] in reg.signed_changes:
            return f"repeats the signed change of entry {reg.signed_changes[p['by_signature']]} (replayed)"
    if e.type in KEY_EVENTS:
        if not admins:
            return "a key was registered or revoked while nobody held 'admin'"
        if not by_keys and p.get("actor") != by:
            return f"admin {by!r} holds no registered key, so may only register their own"
    return ""


def _apply(reg: Registry, e: Entry, pub: Any) -> None:
    p = e.payload
    actor, role = str(p.get("actor", "")), str(p.get("role", ""))
    if e.type == "role.granted":
        reg.roles.setdefault(actor, set()).add(role)
    elif e.type == "role.revoked":
        reg.roles.get(actor, set()).discard(role)
    elif e.type == "key.registered":
        reg.keys.append(RegisteredKey(actor, str(p.get("key_id")), pub, e.time, str(p.get("by", "")), e.seq))
    else:
        for k in reg.keys:
            if k.name == actor and k.key_id == p.get("key_id") and k.revoked is None:
                k.revoked = e.time


def load_registry(store: AuditStore) -> Registry:
    """Replay the store's registry events; a change without authority is skipped and named in `problems`."""
    reg = Registry()
    for e in store.entries(types=REGISTRY_EVENTS):
        why, pub = _authority(reg, e, store.log_id), None
        if not why and e.type == "key.registered":
            try:
                pub = load_public_key(str(e.payload.get("public_key", "")), "public key")
            except GovernanceError as err:
                why = str(err)
            else:
                if key_id(pub) != e.payload.get("key_id"):
                    why = "the key id does not match the public key"
        if why:
            reg.problems.append(f"{e.label()}: {why}")
            continue
        _apply(reg, e, pub)
        if e.payload.get("by_signature"):
            reg.signed_changes[str(e.payload["by_signature"])] = e.seq
    return reg


def current_roles(store: AuditStore) -> dict[str, list[str]]:
    """actor -> sorted roles, from the store's registry events."""
    return load_registry(store).role_map()


def _record(store: AuditStore, signer: Signer, type: str, payload: dict[str, Any], by: str,
            personal: Signer | None, reg: Registry) -> Entry:
    """Append a registry change made by `by`, signed with `personal` when `by` holds a registered key."""
    payload = {**payload, "by": by, "bootstrap": not reg.admins(), "signed_at": utc_now()}
    by_keys = reg.active_keys(by)
    if by_keys:
        if personal is None or personal.key_id not in {k.key_id for k in by_keys}:
            found = (f"none at {personal_key_path()}" if personal is None else
                     f"{personal.path} holds key {personal.key_id[:16]}, which is not theirs")
            raise GovernanceError(f"{by!r} holds a registered key, so their registry changes must be signed with "
                                  f"it ({found}): give {by}'s private key with --key")
        payload["by_key_id"] = personal.key_id
        payload["by_signature"] = personal.sign(change_message(type, payload, store.log_id)).hex()
    why = _authority(reg, Entry(-1, "", by, "", type, payload, "", "", "", ""), store.log_id)
    if why:
        raise GovernanceError(why)
    return store.append(type, payload, actor=by, run_id="", signer=signer)


def _change(store: AuditStore, signer: Signer, by: str, actor: str, role: str, grant: bool,
            personal: Signer | None) -> Entry:
    if role not in ROLES:
        raise GovernanceError(f"role {role!r} is not one of {', '.join(ROLES)}")
    check_name(actor, "ACTOR")
    reg = load_registry(store)
    admins = reg.admins()
    if admins and by not in admins:
        raise GovernanceError(f"only an admin ({', '.join(admins)}) can change roles; {by!r} is not one")
    has = role in reg.roles.get(actor, set())
    if grant and has:
        raise GovernanceError(f"{actor!r} already holds the role {role!r}")
    if not grant and not has:
        raise GovernanceError(f"{actor!r} does not hold the role {role!r}")
    return _record(store, signer, "role.granted" if grant else "role.revoked", {"actor": actor, "role": role},
                   by, personal, reg)


def grant_role(store: AuditStore, signer: Signer, by: str, actor: str, role: str,
               personal: Signer | None = None) -> Entry:
    return _change(store, signer, by, actor, role, True, personal)


def revoke_role(store: AuditStore, signer: Signer, by: str, actor: str, role: str,
                personal: Signer | None = None) -> Entry:
    return _change(store, signer, by, actor, role, False, personal)


def register_key(store: AuditStore, signer: Signer, by: str, actor: str, public_key: Any,
                 personal: Signer | None = None) -> Entry:
    """Register `public_key` (an Ed25519 public key) as a personal key of `actor`; only an admin may."""
    check_name(actor, "NAME")
    reg = load_registry(store)
    admins = reg.admins()
    if by not in admins:
        raise GovernanceError(f"only an admin can register keys; {by!r} is not one ("
                              + (f"admins: {', '.join(admins)})" if admins else
                                 "nobody is yet: `steward roles grant NAME admin` first)"))
    kid = key_id(public_key)
    if kid == signer.key_id:
        raise GovernanceError(f"key {kid[:16]} is the workspace's signing key, which everyone who records in the "
                              f"workspace holds, so it cannot speak for {actor!r}: register the .pub that "
                              f"`steward keys create` made on {actor}'s own account")
    if reg.key_for(actor, kid) is not None:
        raise GovernanceError(f"key {kid[:16]} is already registered for {actor!r}")
    payload = {"actor": actor, "key_id": kid, "public_key": public_pem(public_key)}
    return _record(store, signer, "key.registered", payload, by, personal, reg)


def revoke_key(store: AuditStore, signer: Signer, by: str, actor: str, kid: str,
               personal: Signer | None = None) -> Entry:
    reg = load_registry(store)
    found = [k for k in reg.active_keys(actor) if k.key_id.startswith(kid)] if kid else []
    if len(found) != 1:
        raise GovernanceError(f"KEY_ID: {kid!r} names {len(found)} of {actor!r}'s registered keys; give a longer "
                              "prefix of one (`steward keys list`)")
    return _record(store, signer, "key.revoked", {"actor": actor, "key_id": found[0].key_id}, by, personal, reg)
