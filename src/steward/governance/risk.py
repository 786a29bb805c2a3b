"""Risk register (ISO/IEC 23894:2023 clause 6): risks with their source, the AI objective they
threaten, likelihood, impact, level, treatment, owner, status and links to evidence.

The register lives in the workspace store as audit events (risk.added, risk.updated, each with the
whole record after the change); the current register is the replay of those events. The default
register (default_risks.toml) is added once, when the workspace store is first opened.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from steward.governance._util import GovernanceError
from steward.governance.keys import Signer
from steward.governance.store import AuditStore
from steward.io import tomllib

OBJECTIVES = (
    "fairness", "transparency and explainability", "robustness", "privacy", "security", "safety",
    "accountability", "environmental impact",
)
LIKELIHOOD = {1: "rare", 2: "unlikely", 3: "possible", 4: "likely", 5: "almost certain"}
IMPACT = {1: "negligible", 2: "minor", 3: "moderate", 4: "major", 5: "severe"}
TREATMENT_OPTIONS = ("avoid", "modify", "share", "retain")
"""ISO/IEC 27005 treatment options: avoid the risk, modify likelihood or impact, share it, retain it."""
STATUSES = ("open", "treating", "monitoring", "accepted", "closed")
RISK_EVENTS = ("risk.added", "risk.updated")
EDITABLE = ("title", "source", "objective", "likelihood", "impact", "treatment_option", "treatment", "owner",
            "status", "evidence")


def rating(level: int) -> str:
    """Band of likelihood x impact (1..25)."""
    if level >= 20:
        return "critical"
    if level >= 10:
        return "high"
    if level >= 5:
        return "medium"
    return "low"


@dataclass
class Risk:
    id: str
    title: str
    source: str
    objective: str
    likelihood: int
    impact: int
    treatment_option: str
    treatment: str
    owner: str
    status: str
    evidence: list[str] = field(default_factory=list)
    updated: str = ""
    updated_by: str = ""

    @property
    def level(self) -> int:
        return self.likelihood * self.impact

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "level": self.level, "rating": rating(self.level)}


def _scale(name: str, value: Any, scale: dict[int, str]) -> int:
    if isinstance(value, str):
        for k, v in scale.items():
            if value.strip().lower() == v:
                return k
        if value.strip().isdigit():
            value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value in scale:
        return value
    choices = ", ".join(f"{k} ({v})" for k, v in scale.items())
    raise GovernanceError(f"{name}: must be one of {choices}, got {value!r}")


def check_fields(fields: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    """Validate risk fields; errors name the field and what is allowed."""
    out: dict[str, Any] = {}
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise GovernanceError(f"unknown risk field {sorted(unknown)[0]!r} (fields: {', '.join(EDITABLE)})")
    for k, v in fields.items():
        if k == "likelihood":
            out[k] = _scale("likelihood", v, LIKELIHOOD)
        elif k == "impact":
            out[k] = _scale("impact", v, IMPACT)
        elif k == "objective":
            if v not in OBJECTIVES:
                raise GovernanceError(f"objective: must be one of {', '.join(OBJECTIVES)}, got {v!r}")
            out[k] = v
        elif k == "treatment_option":
            if v not in TREATMENT_OPTIONS:
                raise GovernanceError(f"treatment_option: must be one of {', '.join(TREATMENT_OPTIONS)}, got {v!r}")
            out[k] = v
        elif k == "status":
            if v not in STATUSES:
                raise GovernanceError(f"status: must be one of {', '.join(STATUSES)}, got {v!r}")
            out[k] = v
        elif k == "evidence":
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                raise GovernanceError("evidence: must be a list of links such as policy:RULE, audit:TYPE, metric:NAME")
            out[k] = list(v)
        else:
            if not isinstance(v, str) or not v.strip():
                raise GovernanceError(f"{k}: must be a non-empty string")
            out[k] = v.strip()
    if not partial:
        missing = [k for k in EDITABLE if k not in out and k != "evidence"]
        if missing:
            raise GovernanceError(f"a risk needs {', '.join(missing)} (missing: {missing[0]})")
        out.setdefault("evidence", [])
    return out


def register(store: AuditStore) -> list[Risk]:
    """The current register: the replay of risk events, in id order."""
    risks: dict[str, Risk] = {}
    for e in store.entries(types=RISK_EVENTS):
        rec = e.payload.get("risk", {})
        if not isinstance(rec, dict) or "id" not in rec:
            continue
        known = {k: rec[k] for k in ("id", *EDITABLE) if k in rec}
        try:
            risks[rec["id"]] = Risk(**known, updated=e.time, updated_by=e.actor)
        except TypeError:
            continue
    return [risks[k] for k in sorted(risks)]


def _next_id(risks: list[Risk]) -> str:
    n = max((int(r.id[2:]) for r in risks if r.id.startswith("R-") and r.id[2:].isdigit()), default=0)
    return f"R-{n + 1:03d}"


def add_risk(store: AuditStore, signer: Signer, actor: str, fields: dict[str, Any], default: bool = False) -> Risk:
    clean = check_fields(fields)
    rid = _next_id(register(store))
    rec = {"id": rid, **clean}
    e = store.append("risk.added", {"risk": rec, "default_register": default}, actor=actor, run_id="", signer=signer)
    return Risk(**rec, updated=e.time, updated_by=actor)


def update_risk(store: AuditStore, signer: Signer, actor: str, risk_id: str, changes: dict[str, Any]) -> Risk:
    if not changes:
        raise GovernanceError("nothing to update: give at least one field (e.g. --status closed)")
    clean = check_fields(changes, partial=True)
    current = {r.id: r for r in register(store)}
    if risk_id not in current:
        raise GovernanceError(f"no risk {risk_id!r} in the register (steward risk list shows the ids)")
    old = current[risk_id]
    rec = {k: getattr(old, k) for k in ("id", *EDITABLE)}
    before = {k: rec[k] for k in clean}
    rec.update(clean)
    e = store.append("risk.updated", {"risk": rec, "changed": sorted(clean), "before": before},
                     actor=actor, run_id="", signer=signer)
    return Risk(**rec, updated=e.time, updated_by=actor)


def default_risks() -> list[dict[str, Any]]:
    text = resources.files("steward.governance").joinpath("default_risks.toml").read_text(encoding="utf-8")
    return [check_fields(r) for r in tomllib.loads(text)["risk"]]


def ensure_default_register(store: AuditStore, signer: Signer, actor: str = "steward") -> bool:
    """Add the default register to a store that never had one (once, even with concurrent callers)."""
    if not store.claim("risk_register_seeded"):
        return False
    if store.entries(types=RISK_EVENTS, limit=1):
        return False
    for fields in default_risks():
        add_risk(store, signer, actor, fields, default=True)
    return True
