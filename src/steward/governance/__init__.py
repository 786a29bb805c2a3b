"""Governance: how a model was made, shown to an auditor, with tamper evidence.

Aligned with ISO/IEC 27001:2022 Annex A (5.15, 5.33, 8.9, 8.15, 8.16, 8.24, 8.32) and ISO/IEC
23894:2023 clause 6. Imports no training code: the trainer hands plain data to RunGovernance.

- store.py, merkle.py, verify.py: the append-only audit log (RFC 9162 Merkle tree, signed entries
  and tree heads), SQLite or PostgreSQL, and its verification
- keys.py, workspace.py: Ed25519 keys (the workspace's, and each person's own), the workspace folder
  (its gate policy), published tree heads
- session.py: RunGovernance, what a training run records and the policy gates it passes
- policy.py (+ default_policy.toml), datasheets.py (+ builtin_datasheets.toml): CEL rules, datasheets
- access.py, risk.py (+ default_risks.toml): the role registry (roles, personal keys) and the
  ISO/IEC 23894 risk register; approvals.py: approvals signed with personal keys, four-eyes by key
- lineage.py, provenance.py: code/config/data digests; in-toto + SLSA provenance in a DSSE envelope
- release.py: the approve and release gates; report.py: report.html/json; exports.py: OpenLineage, MLflow
- checks.py: the governance.* settings checked before a run starts
"""

import importlib
from typing import Any

# Public names and the module each lives in. Imported on first use, so that `steward config` and
# other light commands do not pay for CEL, SQLAlchemy and cryptography.
_EXPORTS = {
    "AuditStore": "steward.governance.store",
    "Decision": "steward.governance.policy",
    "Entry": "steward.governance.store",
    "GateRefused": "steward.governance.release",
    "GovernanceError": "steward.governance._util",
    "OBJECTIVES": "steward.governance.risk",
    "Policy": "steward.governance.policy",
    "PolicyDenied": "steward.governance.session",
    "PolicyError": "steward.governance.policy",
    "ROLES": "steward.governance.access",
    "Registry": "steward.governance.access",
    "Risk": "steward.governance.risk",
    "RunGovernance": "steward.governance.session",
    "RunRef": "steward.governance.runs",
    "STAGES": "steward.governance.policy",
    "TreeHead": "steward.governance.store",
    "VerifyResult": "steward.governance.verify",
    "Workspace": "steward.governance.workspace",
    "add_risk": "steward.governance.risk",
    "approve_run": "steward.governance.release",
    "build_report": "steward.governance.report",
    "check_governance": "steward.governance.checks",
    "current_roles": "steward.governance.access",
    "default_actor": "steward.governance.workspace",
    "generate_report": "steward.governance.report",
    "grant_role": "steward.governance.access",
    "load_policy": "steward.governance.policy",
    "load_registry": "steward.governance.access",
    "load_run_ref": "steward.governance.runs",
    "parse_policy": "steward.governance.policy",
    "read_heads": "steward.governance.workspace",
    "register": "steward.governance.risk",
    "register_key": "steward.governance.access",
    "release_run": "steward.governance.release",
    "revoke_key": "steward.governance.access",
    "revoke_role": "steward.governance.access",
    "run_facts": "steward.governance.runs",
    "update_risk": "steward.governance.risk",
    "verify_provenance": "steward.governance.provenance",
    "verify_store": "steward.governance.verify",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'steward.governance' has no attribute {name!r}")
