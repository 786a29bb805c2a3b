"""Roles (ISO/IEC 27001 A.5.15 access control): who may train, steward data, approve, audit.

Roles live in the store as audit events (role.granted, role.revoked); the current assignment is
the replay of those events, so it is exactly as trustworthy as the verified log. Once someone
holds 'admin', only admins change roles; before that any actor may (recorded as bootstrap).
"""

from __future__ import annotations

from steward.governance._util import GovernanceError
from steward.governance.keys import Signer
from steward.governance.store import AuditStore, Entry

ROLES = ("trainer", "data-steward", "approver", "auditor", "admin")
ROLE_EVENTS = ("role.granted", "role.revoked")


def current_roles(store: AuditStore) -> dict[str, list[str]]:
    """actor -> sorted roles, from the store's role events."""
    held: dict[str, set[str]] = {}
    for e in store.entries(types=ROLE_EVENTS):
        actor, role = str(e.payload.get("actor", "")), str(e.payload.get("role", ""))
        if e.type == "role.granted":
            held.setdefault(actor, set()).add(role)
        else:
            held.get(actor, set()).discard(role)
    return {a: sorted(r) for a, r in sorted(held.items()) if r}


def _change(store: AuditStore, signer: Signer, by: str, actor: str, role: str, grant: bool) -> Entry:
    if role not in ROLES:
        raise GovernanceError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if not actor.strip():
        raise GovernanceError("ACTOR must be a non-empty name")
    roles = current_roles(store)
    admins = [a for a, r in roles.items() if "admin" in r]
    if admins and by not in admins:
        raise GovernanceError(f"only an admin ({', '.join(admins)}) can change roles; {by!r} is not one")
    has = role in roles.get(actor, [])
    if grant and has:
        raise GovernanceError(f"{actor!r} already holds the role {role!r}")
    if not grant and not has:
        raise GovernanceError(f"{actor!r} does not hold the role {role!r}")
    payload = {"actor": actor, "role": role, "by": by, "bootstrap": not admins}
    return store.append("role.granted" if grant else "role.revoked", payload, actor=by, run_id="", signer=signer)


def grant_role(store: AuditStore, signer: Signer, by: str, actor: str, role: str) -> Entry:
    return _change(store, signer, by, actor, role, True)


def revoke_role(store: AuditStore, signer: Signer, by: str, actor: str, role: str) -> Entry:
    return _change(store, signer, by, actor, role, False)
