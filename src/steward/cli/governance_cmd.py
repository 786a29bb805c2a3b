"""Governance commands: `steward audit ...`, `report`, `approve`, `release`, `risk ...`, `roles ...`.

TARGET is a run directory, the path of a SQLite store, or a store URL. Exit codes: 0 success,
1 a verification failed or a policy denied the stage (one line naming the entry, head or rule),
2 bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _add_common(p, json_flag: bool = True, keys: bool = False, workspace: bool = True) -> None:
    if json_flag:
        p.add_argument("--json", action="store_true", help="print one JSON object")
    if workspace:
        p.add_argument("--workspace", default="", help="workspace folder (default: the run's, $STEWARD_WORKSPACE "
                                                        "or ~/.steward)")
    if keys:
        p.add_argument("--public-key", action="append", default=[], metavar="PEM",
                       help="trust only this Ed25519 public key (repeatable; default: the workspace's key "
                            "and WORKSPACE/trusted_keys/*)")


def register(sub) -> None:
    _register_audit(sub)
    _register_stages(sub)
    _register_risk(sub)
    _register_roles(sub)


def _register_audit(sub) -> None:
    audit = sub.add_parser("audit", help="verify, read and prove the audit log of a run or store")
    asub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    p = asub.add_parser("verify", help="recompute every leaf, root and signature; check signed tree heads")
    p.add_argument("target", metavar="RUN_DIR|STORE")
    p.add_argument("--against", action="append", default=[], metavar="HEADS_FILE",
                   help="also check tree heads published in this file (repeatable); catches rollbacks")
    p.add_argument("--strict", action="store_true", help="fail when no trusted public key is available")
    _add_common(p, keys=True)
    p.set_defaults(func=run_verify)

    p = asub.add_parser("log", help="print the log's entries")
    p.add_argument("target", metavar="RUN_DIR|STORE")
    p.add_argument("--type", action="append", default=[], help="only entries of this type (repeatable)")
    p.add_argument("--run", default=None, help="only entries of this run id (default for a RUN_DIR: its run)")
    p.add_argument("--all", action="store_true", help="for a RUN_DIR on a shared store: every run's entries")
    p.add_argument("--limit", type=int, default=None, help="at most this many entries")
    _add_common(p)
    p.set_defaults(func=run_log)

    p = asub.add_parser("prove", help="print the inclusion proof of entry N (RFC 9162)")
    p.add_argument("target", metavar="RUN_DIR|STORE")
    p.add_argument("index", type=int, metavar="N")
    p.add_argument("--size", type=int, default=None, help="tree size to prove against (default: the whole log)")
    _add_common(p)
    p.set_defaults(func=run_prove)

    p = asub.add_parser("consistency", help="print the consistency proof between two tree sizes (RFC 9162)")
    p.add_argument("target", metavar="RUN_DIR|STORE")
    p.add_argument("old_size", type=int, metavar="OLD_SIZE")
    p.add_argument("--size", type=int, default=None, help="newer tree size (default: the whole log)")
    _add_common(p)
    p.set_defaults(func=run_consistency)

    p = asub.add_parser("head", help="verify the log, then sign and publish its tree head now")
    p.add_argument("target", metavar="RUN_DIR|STORE")
    p.add_argument("--publish", action="append", default=[], metavar="FILE",
                   help="also append the head to this file (repeatable)")
    _add_common(p, keys=True)
    p.set_defaults(func=run_head)

    p = asub.add_parser("provenance", help="verify RUN_DIR/provenance.json against the files on disk (the run's "
                                           "files and every checkpoint; unattested files fail)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    _add_common(p, keys=True)
    p.set_defaults(func=run_provenance)


def _register_stages(sub) -> None:
    """report, approve and release: a run directory's report and its policy-gated stages."""
    p = sub.add_parser("report", help="write RUN_DIR/report.html and report.json (model card, evidence tables)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--against", action="append", default=[], metavar="HEADS_FILE",
                   help="also check tree heads published in this file")
    _add_common(p, keys=True)
    p.set_defaults(func=run_report)

    p = sub.add_parser("approve", help="approve a run's model, signed with your personal key (policy stage "
                                       "model.approve of the workspace's policy; four-eyes)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--actor", default="", help="who approves (default: $STEWARD_ACTOR or the OS user); a key "
                                               "registered for this name must sign")
    p.add_argument("--note", default="", help="why, for the record")
    add_key_arg(p)
    _add_common(p, keys=True)
    p.set_defaults(func=run_approve)

    p = sub.add_parser("release", help="release a run's model (policy stage model.release)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--actor", default="", help="who releases (default: $STEWARD_ACTOR or the OS user)")
    _add_common(p, keys=True)
    p.set_defaults(func=run_release)


def _register_risk(sub) -> None:
    risk = sub.add_parser("risk", help="the workspace's risk register (ISO/IEC 23894)")
    rsub = risk.add_subparsers(dest="risk_command", metavar="ACTION", required=True)
    p = rsub.add_parser("list", help="list the risks")
    add_store_args(p)
    p.set_defaults(func=run_risk_list)
    for name, help_ in (("add", "add a risk"), ("update", "change fields of a risk")):
        p = rsub.add_parser(name, help=help_)
        if name == "update":
            p.add_argument("risk_id", metavar="ID", help="e.g. R-003")
        p.add_argument("--title")
        p.add_argument("--source", help="where the risk comes from (training data, release process, ...)")
        p.add_argument("--objective", help="affected objective: fairness, transparency and explainability, "
                                           "robustness, privacy, security, safety, accountability, environmental impact")
        p.add_argument("--likelihood", help="1-5 or rare, unlikely, possible, likely, almost certain")
        p.add_argument("--impact", help="1-5 or negligible, minor, moderate, major, severe")
        p.add_argument("--treatment-option", help="avoid, modify, share or retain")
        p.add_argument("--treatment", help="what is done about it")
        p.add_argument("--owner")
        p.add_argument("--status", help="open, treating, monitoring, accepted or closed")
        p.add_argument("--evidence", action="append", default=None,
                       help="link to evidence: policy:RULE, audit:TYPE, metric:NAME, control:ID (repeatable)")
        p.add_argument("--actor", default="", help="who makes the change (default: $STEWARD_ACTOR or the OS user)")
        add_store_args(p)
        p.set_defaults(func=run_risk_add if name == "add" else run_risk_update)


def _register_roles(sub) -> None:
    roles = sub.add_parser("roles", help="roles in the workspace: trainer, data-steward, approver, auditor, admin")
    osub = roles.add_subparsers(dest="roles_command", metavar="ACTION", required=True)
    p = osub.add_parser("list", help="who holds which roles")
    add_store_args(p)
    p.set_defaults(func=run_roles_list)
    for name in ("grant", "revoke"):
        p = osub.add_parser(name, help=f"{name} a role")
        p.add_argument("who", metavar="ACTOR")
        p.add_argument("role", metavar="ROLE")
        p.add_argument("--actor", default="", help="who makes the change (default: $STEWARD_ACTOR or the OS user)")
        add_key_arg(p)
        add_store_args(p)
        p.set_defaults(func=run_roles_change, grant=name == "grant")


def add_key_arg(p) -> None:
    p.add_argument("--key", default="", metavar="PEM",
                   help="your personal private key (default: $STEWARD_USER_KEY, else "
                        "$XDG_CONFIG_HOME/steward/personal_key.pem; `steward keys create` makes one)")


def add_store_args(p) -> None:
    _add_common(p)
    p.add_argument("--store", default="", help="a shared store URL (default: the workspace's audit.db)")


# ---- helpers ---------------------------------------------------------------------------------------


def emit(args, obj: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(obj, sort_keys=True))
    elif text:
        print(text)


def _fail(args, command: str, obj: dict[str, Any], reason: str) -> int:
    if args.json:
        print(json.dumps(obj, sort_keys=True))
    print(f"steward {command}: {reason}", file=sys.stderr)
    return 1


class _Target:
    """A run directory, a SQLite file or a store URL, opened read-write on an existing store."""

    def __init__(self, spec: str, workspace: str):
        from steward.errors import UserError
        from steward.governance.runs import load_run_ref
        from steward.governance.store import AuditStore
        from steward.governance.workspace import Workspace

        self.run_id: str | None = None
        self.ref = None
        path = Path(spec).expanduser()
        if path.is_dir():
            self.ref = load_run_ref(path, workspace)
            self.workspace, self.run_id, self.store = self.ref.workspace, self.ref.run_id, self.ref.open_store()
            self.run_dir: Path | None = path
        elif "://" in spec or path.is_file():
            self.workspace = Workspace(workspace)
            self.store = AuditStore(spec, create=False)
            self.run_dir = None
        else:
            raise UserError(f"{spec!r} is neither a run directory, a store file nor a store URL")
        # the log the run names (empty for a store): verification checks the store holds it
        self.log_id = self.ref.log_id if self.ref is not None else ""

    def heads_files(self, against: list[str]) -> list[str]:
        """The heads files read besides the workspace's heads.jsonl: a run's governance.publish_heads, `against`."""
        return self.ref.heads_files(against) if self.ref is not None else list(against)

    def published(self, against: list[str]) -> list:
        """Published tree heads of every log, from heads.jsonl and heads_files(against)."""
        return self.workspace.published_heads(self.heads_files(against))

    def close(self) -> None:
        self.store.close()


# ---- audit -----------------------------------------------------------------------------------------


def run_verify(args) -> int:
    from steward.governance.verify import verify_store

    t = _Target(args.target, args.workspace)
    try:
        trusted = t.workspace.trusted_keys(args.public_key)
        registry, untrusted = t.workspace.registry(trusted)
        res = verify_store(t.store, trusted, t.published(args.against), strict=args.strict, log_id=t.log_id,
                           registry=registry)
    finally:
        t.close()
    if res.ok and untrusted:  # the approvals were checked against a registry read from an edited store
        res.ok, res.error = False, untrusted
    d = {**res.to_dict(), "published_heads_files": [str(t.workspace.heads_file), *t.heads_files(args.against)]}
    if not res.ok:
        return _fail(args, "audit verify", d, f"FAILED: {res.error}")
    for w in res.warnings:
        print(f"steward audit verify: warning: {w}", file=sys.stderr)
    emit(args, d, f"OK: {res.entries} entries, root {res.root}\n"
                   f"  store {res.store} (log {res.log_id}); {res.heads_checked} stored and "
                   f"{res.published_heads_checked} published tree heads, {res.consistency_checks} consistency proofs, "
                   f"signatures by {', '.join(k[:16] for k in res.signers) or 'nobody'} ({res.key_trust} key)")
    return 0


def run_log(args) -> int:
    if args.limit is not None:
        _check_range(args.limit, 0, 2**63 - 1, "--limit")  # a store's LIMIT is a signed 64-bit integer
    t = _Target(args.target, args.workspace)
    try:
        run_id = args.run if args.run is not None else (None if args.all else t.run_id)
        entries = t.store.entries(run_id=run_id, types=args.type or None, limit=args.limit)
    finally:
        t.close()
    if args.json:
        print(json.dumps({"store": t.store.display_url, "log_id": t.store.log_id, "run_id": run_id,
                          "entries": [e.to_dict() for e in entries]}, sort_keys=True))
        return 0
    for e in entries:
        payload = json.dumps(e.payload, sort_keys=True)
        if len(payload) > 160:
            payload = payload[:157] + "..."
        print(f"{e.seq:>6}  {e.time}  {e.actor:<12} {e.type:<18} {e.run_id[:8]:<8}  {payload}")
    return 0


def _check_range(n: int, lo: int, hi: int, name: str) -> None:
    from steward.errors import UserError

    if not lo <= n <= hi:
        raise UserError(f"{name}: must be in {lo}..{hi}, got {n}")


def run_prove(args) -> int:
    from steward.governance.verify import inclusion_proof

    t = _Target(args.target, args.workspace)
    try:
        size = t.store.size() if args.size is None else args.size
        _check_range(size, 1, t.store.size(), "--size")
        _check_range(args.index, 0, size - 1, "N")
        proof = inclusion_proof(t.store, args.index, size)
        entry = t.store.entry(args.index)
    finally:
        t.close()
    proof["entry"] = entry.to_dict() if entry else None
    text = (f"entry {args.index} of {size}: leaf {proof['leaf_hash']}\nroot {proof['root_hash']}\n"
            + "\n".join(f"  {i}: {h}" for i, h in enumerate(proof["proof"]))
            + f"\nverified: {proof['verified']}")
    emit(args, proof, text)
    return 0 if proof["verified"] else 1


def run_consistency(args) -> int:
    from steward.governance.verify import consistency_proof

    t = _Target(args.target, args.workspace)
    try:
        size = t.store.size() if args.size is None else args.size
        _check_range(size, 0, t.store.size(), "--size")
        _check_range(args.old_size, 0, size, "OLD_SIZE")
        proof = consistency_proof(t.store, args.old_size, size)
    finally:
        t.close()
    text = (f"sizes {args.old_size} -> {size}: {proof['old_root']} -> {proof['root_hash']}\n"
            + "\n".join(f"  {i}: {h}" for i, h in enumerate(proof["proof"])) + f"\nverified: {proof['verified']}")
    emit(args, proof, text)
    return 0 if proof["verified"] else 1


def run_head(args) -> int:
    from steward.governance.verify import verify_store

    t = _Target(args.target, args.workspace)
    try:
        res = verify_store(t.store, t.workspace.trusted_keys(args.public_key), t.published([]), log_id=t.log_id)
        if not res.ok:
            return _fail(args, "audit head", {"ok": False, "error": res.error},
                         f"not signing: the log does not verify: {res.error}")
        head = t.store.sign_head(t.workspace.signer())
        written = t.workspace.publish_head(head, t.store.display_url, args.publish)
    finally:
        t.close()
    d = {"ok": True, "head": head.to_dict(), "published_to": written}
    emit(args, d, f"signed tree head: size {head.tree_size}, root {head.root_hash}\npublished to "
                   + ", ".join(written))
    return 0


def run_provenance(args) -> int:
    from steward.governance.provenance import verify_provenance
    from steward.governance.runs import recorded_for_provenance, run_facts

    t = _Target(args.run_dir, args.workspace)
    try:
        if t.run_dir is None:
            from steward.errors import UserError

            raise UserError(f"{args.run_dir!r} is not a run directory")
        trusted = t.workspace.trusted_keys(args.public_key)
        recorded = recorded_for_provenance(t.store, run_facts(t.store, t.run_id))
        keys = trusted or t.store.public_keys()
        res = verify_provenance(t.run_dir, keys, key_trust="trusted" if trusted else "store", recorded=recorded)
    finally:
        t.close()
    if not res["ok"]:  # one line per problem
        for problem in res["problems"][:-1]:
            print(f"steward audit provenance: FAILED: {problem}", file=sys.stderr)
        return _fail(args, "audit provenance", res, f"FAILED: {res['problems'][-1]}")
    emit(args, res, f"OK: {res['path']}: signature by {res['key_id'][:16]} ({res['key_trust']} key), "
                     f"{res['subjects_checked']} files match their attested SHA-256")
    return 0


def run_report(args) -> int:
    from steward.governance.report import generate_report
    from steward.governance.workspace import Workspace

    ws = Workspace(args.workspace) if args.workspace else None
    out = generate_report(args.run_dir, workspace=ws, public_keys=args.public_key, against=args.against)
    r = out["report"]
    d = {"html": out["html"], "json": out["json"], "audit_ok": r["audit"]["ok"], "run_id": r["run"]["id"],
         "status": r["run"]["status"]}
    emit(args, d, f"wrote {out['html']} and {out['json']} (audit log {'verified' if r['audit']['ok'] else 'FAILED'})")
    return 0


def _gate(args, command: str, fn) -> int:
    """Run an approve/release: a policy denial, or a log or provenance that does not verify, exits 1
    with one line (the rule's name and message, or what failed)."""
    from steward.governance.release import GateRefused
    from steward.governance.session import PolicyDenied

    try:
        res = fn()
    except PolicyDenied as e:
        return _fail(args, command, {"ok": False, "denied": e.decision.to_dict(), "reason": str(e)}, f"denied: {e}")
    except GateRefused as e:
        return _fail(args, command, {"ok": False, "error": str(e)}, str(e))
    return res


def run_approve(args) -> int:
    from steward.governance.release import approve_run

    def go() -> int:
        res = approve_run(args.run_dir, actor=args.actor, note=args.note, workspace=args.workspace, key=args.key,
                          public_keys=args.public_key)
        emit(args, {"ok": True, **res}, f"approved run {res['run_id']} as {res['actor']}, signed with key "
                                         f"{res['key_id'][:16]} (audit entry {res['entry']})")
        return 0

    return _gate(args, "approve", go)


def run_release(args) -> int:
    from steward.governance.release import release_run

    def go() -> int:
        res = release_run(args.run_dir, actor=args.actor, workspace=args.workspace, public_keys=args.public_key)
        emit(args, {"ok": True, **res}, f"released run {res['run_id']} ({res['checkpoint']}) as {res['actor']} "
                                         f"(audit entry {res['entry']})")
        return 0

    return _gate(args, "release", go)


# ---- risks and roles ---------------------------------------------------------------------------------


def sign_and_publish(ws, store) -> None:
    """Sign and publish the tree head after a change made from the command line."""
    ws.publish_head(store.sign_head(ws.signer()), store.display_url)


def workspace_store(args):
    from steward.governance.workspace import Workspace

    ws = Workspace(args.workspace, store=args.store)
    return ws, ws.open_store()


def run_risk_list(args) -> int:
    from steward.governance.risk import register

    ws, store = workspace_store(args)
    try:
        risks = [r.to_dict() for r in register(store)]
    finally:
        store.close()
    if args.json:
        print(json.dumps({"store": store.display_url, "risks": risks}, sort_keys=True))
        return 0
    for r in risks:
        print(f"{r['id']}  {r['rating']:<8} L{r['likelihood']}xI{r['impact']}={r['level']:<3} {r['status']:<10} "
              f"{r['objective']:<20} {r['title']}  (owner {r['owner']})")
    return 0


def _risk_fields(args) -> dict[str, Any]:
    fields = {k: getattr(args, k) for k in ("title", "source", "objective", "likelihood", "impact",
                                            "treatment_option", "treatment", "owner", "status", "evidence")}
    return {k: v for k, v in fields.items() if v is not None}


def run_risk_add(args) -> int:
    from steward.governance.risk import add_risk
    from steward.governance.workspace import default_actor

    ws, store = workspace_store(args)
    try:
        fields = _risk_fields(args)
        fields.setdefault("status", "open")
        risk = add_risk(store, ws.signer(), default_actor(args.actor), fields)
        sign_and_publish(ws, store)
    finally:
        store.close()
    emit(args, {"ok": True, "risk": risk.to_dict()}, f"added {risk.id}: {risk.title}")
    return 0


def run_risk_update(args) -> int:
    from steward.governance.risk import update_risk
    from steward.governance.workspace import default_actor

    ws, store = workspace_store(args)
    try:
        risk = update_risk(store, ws.signer(), default_actor(args.actor), args.risk_id, _risk_fields(args))
        sign_and_publish(ws, store)
    finally:
        store.close()
    emit(args, {"ok": True, "risk": risk.to_dict()}, f"updated {risk.id}: {risk.title} ({risk.status})")
    return 0


def emit_registry_listing(args, command: str, ws, store, obj: dict[str, Any], text: str) -> int:
    """Print a listing read from the workspace store's registry, and say (exit 1, one line on stderr) when
    that store does not verify: a listing of an edited store (a revocation row deleted) is not evidence."""
    problem = ws.registry_problem(store, ws.trusted_keys())
    emit(args, {**obj, "verified": not problem, "problem": problem}, text)
    if problem:
        print(f"steward {command}: warning: {problem}", file=sys.stderr)
        return 1
    return 0


def run_roles_list(args) -> int:
    from steward.governance.access import current_roles

    ws, store = workspace_store(args)
    try:
        roles = current_roles(store)
        return emit_registry_listing(
            args, "roles list", ws, store, {"store": store.display_url, "roles": roles},
            "\n".join(f"{a}: {', '.join(r)}" for a, r in roles.items()) or "no roles assigned (everyone may act)")
    finally:
        store.close()


def run_roles_change(args) -> int:
    from steward.governance.access import grant_role, revoke_role
    from steward.governance.keys import personal_signer_if_any
    from steward.governance.workspace import default_actor

    ws, store = workspace_store(args)
    try:
        fn = grant_role if args.grant else revoke_role
        by = default_actor(args.actor)
        entry = fn(store, ws.signer(), by, args.who, args.role, personal_signer_if_any(args.key, by))
        sign_and_publish(ws, store)
    finally:
        store.close()
    verb = "granted" if args.grant else "revoked"
    emit(args, {"ok": True, "entry": entry.to_dict()}, f"{verb} {args.role} {'to' if args.grant else 'from'} "
                                                         f"{args.who} (audit entry {entry.seq})")
    return 0
