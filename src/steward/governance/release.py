"""`steward approve RUN_DIR` and `steward release RUN_DIR`: the model.approve and model.release gates.

Both first verify the run's audit log, with the approvals' signatures against the workspace's role
registry; release also needs provenance.json, verifying, with the attested config equal to
config.toml. Then the rules of the WORKSPACE's policy (WORKSPACE/policy.toml, else the default pack)
for the stage decide, always enforced: the run's own governance.policy and governance.enforce (which
whoever trained chose, and which config.toml can be edited to say) govern only its training stages.
Every decision is recorded; an allowed stage records model.approved (signed with the approver's
personal key) or model.released and signs a tree head. Only approvals whose signature verifies and
whose key does not speak for the trainer reach the policy's `approvals`.
"""

from __future__ import annotations

from typing import Any

from steward.governance._util import GovernanceError
from steward.governance.access import load_registry
from steward.governance.approvals import (
    approver_key_check,
    registered_trainer_key,
    sign_approval,
    signed_approvals,
)
from steward.governance.keys import load_personal_signer
from steward.governance.provenance import verify_provenance
from steward.governance.runs import RunRef, load_run_ref, recorded_for_provenance, run_facts
from steward.governance.session import PolicyDenied, record_decisions
from steward.governance.store import AuditStore
from steward.governance.verify import verify_store
from steward.governance.workspace import default_actor

NUMERIC = (int, float)


class GateRefused(GovernanceError):
    """approve/release refused before any rule ran: the audit log or provenance does not verify."""


def _evaluation(summary: dict[str, Any]) -> dict[str, Any]:
    ev = {k: v for k, v in summary.items() if isinstance(v, NUMERIC) and not isinstance(v, bool)}
    if isinstance(summary.get("fairness"), dict):
        ev["fairness"] = summary["fairness"]
    return ev


class _Gate:
    """Everything approve and release share: the run, its verified log, roles, policy."""

    def __init__(self, run_dir: str, actor: str, workspace: str, public_keys: list[str] | tuple[str, ...]):
        self.ref: RunRef = load_run_ref(run_dir, workspace)
        gcfg = self.ref.config.get("governance", {}) if isinstance(self.ref.config.get("governance"), dict) else {}
        self.gcfg = gcfg
        self.actor = default_actor(actor or "")
        self.ws = self.ref.workspace
        self.enforce = True  # the gates' policy is the workspace's, never switched off by the run
        self.policy = self.ws.gate_policy()
        self.signer = self.ws.signer()
        self.store = self.ref.open_store()
        self.ws_store: AuditStore | None = None
        try:
            if self.store.is_at(self.ws.store_url):
                self.ws_store = self.store
            else:
                self.ws_store = self.ws.open_store()
            self.registry = load_registry(self.ws_store)
            self.roles = self.registry.role_map()
            trusted = self.ws.trusted_keys(public_keys)
            why = "" if self.ws_store is self.store else self.ws.registry_problem(self.ws_store, trusted)
            if why:
                raise GateRefused(why)
            self.audit = verify_store(self.store, trusted, self.ref.published_heads(), log_id=self.ref.log_id,
                                      registry=self.registry)
            self.facts = run_facts(self.store, self.ref.run_id)
            if self.facts["started"] is None:
                raise GovernanceError(f"the audit log has no run.started for run {self.ref.run_id}")
            self.provenance = None
            if (self.ref.run_dir / "provenance.json").is_file():
                self.provenance = verify_provenance(self.ref.run_dir, trusted or self.store.public_keys(),
                                                    recorded=recorded_for_provenance(self.store, self.facts))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.ws_store is not None and self.ws_store is not self.store:
            self.ws_store.close()
        self.store.close()

    def run_context(self) -> dict[str, Any]:
        f, started = self.facts, self.facts["started"]
        summary = (f["finished"] or {}).get("summary", {})
        return {
            "id": self.ref.run_id, "name": started.get("job_name", ""), "actor": f["actor"],
            "run_dir": str(self.ref.run_dir.resolve()), "status": f["status"], "config": started.get("config", {}),
            "config_hash": started.get("config_sha256", ""), "code": started.get("code", {}),
            "env": started.get("environment", {}), "datasets": [d.get("dataset", {}) for d in f["datasets"]],
            "audit_verified": self.audit.ok, "policy_denials": f["policy_denials"],
            "provenance_verified": bool(self.provenance and self.provenance["ok"]),
            "final_checkpoint": summary.get("final_checkpoint"),
            "trainer_key_id": registered_trainer_key(self.registry, self.ref.run_id, started),
        }, summary

    def approvals(self) -> list[dict[str, Any]]:
        """The approvals the policy sees: signed by a key registered for the approver that is not the
        trainer's, of the provenance.json the run has now (an approval signed over another digest approved
        other files), one per key (a key that approved twice is still one person)."""
        current = (self.facts.get("provenance") or {}).get("sha256")
        by_key: dict[str, dict[str, Any]] = {}
        for a in signed_approvals(self.registry, self.facts):
            if a["verified"] and not a["trainer_key"] and a.get("provenance_sha256") == current:
                by_key.setdefault(a["key_id"], {"actor": a.get("actor"), "time": a.get("time"),
                                                "note": a.get("note", ""), "key_id": a["key_id"],
                                                "roles": self.roles.get(a.get("actor", ""), [])})
        return list(by_key.values())

    def decide(self, stage: str, extra: dict[str, Any], subject: str) -> list[dict[str, Any]]:
        if self.policy is None:
            return []
        run, _ = self.run_context()
        ctx = {"actor": self.actor, "roles": self.roles, "actor_roles": self.roles.get(self.actor, []), "run": run,
               **extra}
        decisions = self.policy.evaluate(stage, ctx, subject, enforce=self.enforce)
        record_decisions(self.store, self.signer, self.actor, self.ref.run_id, self.policy, decisions, self.enforce)
        denied = [d for d in decisions if d.effect == "deny"]
        if denied:
            self.sign_head()
            raise PolicyDenied(denied[0])
        return [d.to_dict() for d in decisions]

    def sign_head(self):
        head = self.store.sign_head(self.signer)
        extra = [self.gcfg["publish_heads"]] if self.gcfg.get("publish_heads") else []
        self.ws.publish_head(head, self.store.display_url, extra)
        return head


def _common_checks(g: _Gate, what: str) -> None:
    if not g.audit.ok:
        raise GateRefused(f"cannot {what}: the audit log does not verify: {g.audit.error}")
    if g.provenance is not None and not g.provenance["ok"]:
        raise GateRefused(f"cannot {what}: provenance.json does not verify: {g.provenance['error']}")


def _release_checks(g: _Gate) -> None:
    """Release needs provenance.json, verifying, whose attested config is config.toml (before any rule runs)."""
    _common_checks(g, "release")
    if g.provenance is None:
        raise GateRefused(f"cannot release: {g.ref.run_dir / 'provenance.json'} is missing; a run is released only "
                          "with the signed provenance its end wrote (steward audit provenance RUN_DIR)")
    if not g.provenance.get("config_checked"):
        raise GateRefused("cannot release: the config attested in provenance.json could not be compared with "
                          f"{g.ref.run_dir / 'config.toml'}")


def approve_run(run_dir: str, *, actor: str = "", note: str = "", workspace: str = "", key: str = "",
                public_keys: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Record model.approved, signed with the approver's personal key (`key`, else personal_key_path()),
    after the model.approve gate allows it."""
    g = _Gate(run_dir, actor, workspace, public_keys)
    try:
        _common_checks(g, "approve")
        try:
            personal = load_personal_signer(key, g.actor)
        except GovernanceError as e:
            raise GateRefused(f"cannot approve: {e}") from None
        why = approver_key_check(g.registry, personal, g.actor, g.facts)
        if why:
            raise GateRefused(f"cannot approve: {why}")
        _, summary = g.run_context()
        decisions = g.decide("model.approve", {"approval": {"actor": g.actor, "note": note},
                                               "approvals": g.approvals(), "evaluation": _evaluation(summary)},
                             f"run {g.ref.run_id}")
        prov = g.facts.get("provenance") or {}
        entry = g.store.append("model.approved", {
            "note": note, "roles": g.roles.get(g.actor, []), "trainer": g.facts["actor"],
            "checkpoint": prov.get("checkpoint"), "provenance_sha256": prov.get("sha256"),
            "audit_root_before": g.audit.root, "audit_size_before": g.audit.entries,
            **sign_approval(personal, g.actor, g.ref.run_id, prov.get("sha256"), note),
        }, actor=g.actor, run_id=g.ref.run_id, signer=g.signer)
        head = g.sign_head()
        return {"approved": True, "run_id": g.ref.run_id, "actor": g.actor, "key_id": personal.key_id,
                "entry": entry.seq, "decisions": decisions, "head": head.to_dict()}
    finally:
        g.close()


def release_run(run_dir: str, *, actor: str = "", workspace: str = "",
                public_keys: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Record model.released for the run after the model.release gate allows it."""
    g = _Gate(run_dir, actor, workspace, public_keys)
    try:
        _release_checks(g)
        _, summary = g.run_context()
        approvals = g.approvals()
        decisions = g.decide("model.release", {"release": {"actor": g.actor}, "approvals": approvals,
                                               "evaluation": _evaluation(summary)}, f"run {g.ref.run_id}")
        prov = g.facts.get("provenance") or {}
        entry = g.store.append("model.released", {
            "checkpoint": prov.get("checkpoint"), "provenance_sha256": prov.get("sha256"),
            "approvals": [a["actor"] for a in approvals], "approval_keys": [a["key_id"] for a in approvals],
            "trainer": g.facts["actor"], "policy": {k: v for k, v in g.policy.describe().items() if k != "rules"} if g.policy else None,
        }, actor=g.actor, run_id=g.ref.run_id, signer=g.signer)
        head = g.sign_head()
        return {"released": True, "run_id": g.ref.run_id, "actor": g.actor, "entry": entry.seq,
                "checkpoint": prov.get("checkpoint"), "decisions": decisions, "head": head.to_dict()}
    finally:
        g.close()
