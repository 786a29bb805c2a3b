"""`steward report RUN_DIR`: report.json and a self-contained report.html (inline CSS and SVG, no
scripts, no network) for an auditor.

Sections: model card (after Mitchell et al., "Model Cards for Model Reporting", FAT* 2019), a
datasheet per dataset, loss and throughput charts, an evidence table per ISO/IEC 27001:2022
Annex A control and per ISO/IEC 23894:2023 clause-6 activity (what was recorded, where, whether it
was verified), the EU AI Act Annex IV / XI headings the evidence covers, policy decisions, the
risk register, and the audit log's verification result.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from steward.governance._util import GovernanceError, jsonable, read_toml_file, utc_now
from steward.governance._util import finite_or_none as _num
from steward.governance.access import Registry, load_registry
from steward.governance.approvals import signed_approvals, trainer_keys
from steward.governance.lineage import config_sha256
from steward.governance.provenance import verify_provenance
from steward.governance.report_html import render_html
from steward.governance.risk import register
from steward.governance.runs import load_run_ref, read_config, recorded_for_provenance, run_facts
from steward.governance.store import AuditStore
from steward.governance.verify import verify_store
from steward.governance.workspace import Workspace
from steward.io import atomic_write_text, read_jsonl

MODEL_CARD_KEYS = ("description", "intended_use", "out_of_scope_use", "ethical_considerations", "caveats",
                   "license", "owner")


# ---- inputs --------------------------------------------------------------------------------------


def load_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The objects of RUN_DIR/metrics.jsonl (none when it is missing); a line cut short by a crash is left out."""
    rows = read_jsonl(run_dir / "metrics.jsonl", skip_bad=True, missing_ok=True)
    return [rec for _, rec in rows if isinstance(rec, dict)]


def load_model_card(path: str) -> dict[str, str]:
    """governance.model_card: a TOML file of the model card's prose (keys MODEL_CARD_KEYS)."""
    data = read_toml_file(path, "governance.model_card")
    unknown = set(data) - set(MODEL_CARD_KEYS)
    if unknown:
        raise GovernanceError(f"governance.model_card: unknown key {sorted(unknown)[0]!r} "
                              f"(known: {', '.join(MODEL_CARD_KEYS)})")
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        raise GovernanceError(f"governance.model_card: {bad[0]} must be a string")
    return data


# ---- evidence ------------------------------------------------------------------------------------


def _row(id: str, title: str, recorded: str, where: str, verified: bool | None, detail: str = "") -> dict[str, Any]:
    return {"id": id, "title": title, "recorded": recorded, "where": where, "verified": verified, "detail": detail}


def _iso27001(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    f, audit, prov, ws = ctx["facts"], ctx["audit"], ctx["provenance"], ctx["workspace_audit"]
    store, counts = ctx["store_url"], f["event_counts"]
    n_run = len(f["entries"])
    cfg_ok = ctx["config_matches"]
    code = (f["started"] or {}).get("code", {})
    roles = ctx["roles"]
    sig_ok = audit["ok"] and (prov is None or prov["ok"])
    return [
        _row("A.5.15", "Access control",
             f"{sum(len(r) for r in roles.values())} role assignments in the workspace store; every one of the "
             f"run's {n_run} events names its actor ({', '.join(sorted({e for e in ctx['actors']})) or 'none'})",
             ctx["workspace_store_url"] or store, ws["ok"] if ws else None,
             "roles are the replay of role.granted/role.revoked events of the verified workspace log"),
        _row("A.5.33", "Protection of records",
             f"{audit['entries']} entries in an RFC 9162 Merkle log, each signed (Ed25519); "
             f"{audit['heads_checked']} signed tree heads in the store, {audit['published_heads_checked']} published "
             "outside it", f"{store}; {ctx['heads_file']}", audit["ok"], audit.get("error") or audit["line"]),
        _row("A.8.9", "Configuration management",
             f"resolved config and its SHA-256 ({ctx['config_hash'][:16]}...) recorded in run.started",
             "config.toml; run.started", cfg_ok,
             "config.toml hashes to the recorded value" if cfg_ok else "config.toml does not match the recorded hash"
             if cfg_ok is False else "config.toml is missing"),
        _row("A.8.15", "Logging",
             f"{n_run} lifecycle events for this run: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())),
             store, audit["ok"]),
        _row("A.8.16", "Monitoring activities",
             f"{ctx['n_metrics']} metric records, {counts.get('eval.completed', 0)} evaluations, "
             f"{counts.get('fairness.evaluated', 0)} fairness evaluations, "
             f"{counts.get('monitor.alert', 0) + counts.get('fairness.alert', 0) + counts.get('drift.alert', 0)} alerts",
             "metrics.jsonl; eval.completed, fairness.evaluated, monitor.alert, drift.alert events",
             audit["ok"] if counts.get("eval.completed") else None),
        _row("A.8.24", "Use of cryptography",
             f"Ed25519 signatures on every entry, tree head{' and provenance.json' if prov else ''}; signing key "
             f"{(audit['signers'] or ['none'])[0][:16]}, key file {ctx['key_mode'] or 'not on this machine'}",
             "workspace keys/; store; provenance.json", sig_ok if audit["key_trust"] == "trusted" else None,
             "verified with the public key only" + ("" if audit["key_trust"] == "trusted" else
                                                    " (key taken from the store, not independently trusted)")),
        _row("A.8.32", "Change management",
             f"code {code.get('version')} at commit {str(code.get('git_commit'))[:12]}"
             + (f" plus uncommitted changes {str(code.get('uncommitted_sha256'))[:12]}" if code.get("dirty") else "")
             + f"; {len(f['decisions'])} policy decisions; {len(f['approvals'])} approvals; {len(f['releases'])} releases",
             "run.started; policy.decision; model.approved; model.released",
             prov["ok"] if prov else (audit["ok"] if f["decisions"] else None),
             "code and data digests attested in provenance.json" if prov else ""),
    ]


def _iso23894(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    f, risks, audit, ws = ctx["facts"], ctx["risks"], ctx["audit"], ctx["workspace_audit"]
    policy = (f["started"] or {}).get("policy") or {}
    treated = [r for r in risks if r["status"] in ("treating", "monitoring", "closed", "accepted")]
    updates = ctx["risk_updates"]
    ws_ok = ws["ok"] if ws else None
    return [
        _row("6.2", "Communication and consultation",
             f"{len(f['approvals'])} approvals by actors other than the trainer; this report", "model.approved",
             audit["ok"] if f["approvals"] else None),
        _row("6.3", "Scope, context and criteria",
             f"policy {policy.get('name', 'none')} (SHA-256 {str(policy.get('sha256', ''))[:16]}...) with "
             f"{len(policy.get('rules', []))} rules over lifecycle stages; datasheets with intended uses",
             "run.started; data.ingested", audit["ok"] if policy else None),
        _row("6.4", "Risk assessment (identification, analysis, evaluation)",
             f"{len(risks)} risks with likelihood, impact, level and rating; "
             f"{sum(1 for r in risks if r['rating'] in ('high', 'critical'))} rated high or critical",
             ctx["workspace_store_url"], ws_ok),
        _row("6.5", "Risk treatment",
             f"{len(treated)} of {len(risks)} risks under treatment, monitoring, accepted or closed; "
             f"{len(f['decisions'])} policy decisions enforced at stages ({f['policy_denials']} denials)",
             "risk register; policy.decision", ws_ok if ws_ok is not None else audit["ok"]),
        _row("6.6", "Monitoring and review",
             f"{len(f['evaluations'])} evaluations and {f['event_counts'].get('fairness.evaluated', 0)} fairness "
             f"evaluations during training; {updates} risk updates in the register",
             "eval.completed; fairness.evaluated; risk.updated", audit["ok"]),
        _row("6.7", "Recording and reporting",
             f"signed audit log ({audit['entries']} entries), provenance.json, this report",
             "store; provenance.json; report.html", audit["ok"] and (ctx["provenance"] or {"ok": True})["ok"]),
    ]


def _eu_ai_act(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    card, f = ctx["card"], ctx["facts"]
    have = {k for k in MODEL_CARD_KEYS if ctx["card_provided"].get(k)}
    risks = bool(ctx["risks"])
    rows = [
        ("Annex IV 1", "General description of the AI system (intended purpose, provider, versions)",
         "partly" if "intended_use" not in have else "yes", "model card"),
        ("Annex IV 2", "Elements of the system and process of its development (design, data, validation)",
         "yes" if f["datasets"] and ctx["summary"] else "partly", "config, code version, datasheets, metrics"),
        ("Annex IV 3", "Monitoring, functioning and control of the system", "partly",
         "metrics.jsonl, evaluations, policy gates"),
        ("Annex IV 4", "Appropriateness of the performance metrics", "no",
         "validation loss only; the provider states why it is appropriate"),
        ("Annex IV 5", "Risk management system (Article 9)", "yes" if risks else "no", "risk register"),
        ("Annex IV 6", "Relevant changes through the lifecycle", "yes", "signed audit log, code version"),
        ("Annex IV 7", "Harmonised standards or other specifications applied", "partly",
         "ISO/IEC 27001 and ISO/IEC 23894 evidence tables in this report"),
        ("Annex IV 8", "Copy of the EU declaration of conformity", "no", "outside Steward"),
        ("Annex IV 9", "Post-market monitoring (Article 72)", "no", "outside Steward"),
        ("Annex XI 1(a)", "Tasks the model is intended to perform; systems it can be integrated in",
         "yes" if "intended_use" in have else "no", "model card (governance.model_card)"),
        ("Annex XI 1(b)", "Acceptable use policies", "yes" if "out_of_scope_use" in have else "no",
         "model card (governance.model_card)"),
        ("Annex XI 1(c)", "Date of release and methods of distribution", "yes" if f["releases"] else "no",
         "model.released"),
        ("Annex XI 1(d)", "Architecture and number of parameters", "yes" if card["model_details"].get("parameters")
         else "partly", "model card, config"),
        ("Annex XI 1(e)", "Modality and format of inputs and outputs", "yes", "model card"),
        ("Annex XI 1(f)", "Licence", "yes" if "license" in have else "no", "model card (governance.model_card)"),
        ("Annex XI 2(b)", "Design specifications and training process", "yes", "config, code version, provenance"),
        ("Annex XI 2(c)", "Data for training, testing and validation: provenance, curation, size, biases",
         "yes" if f["datasets"] else "no", "datasheets, data.ingested"),
        ("Annex XI 2(d)", "Computational resources (FLOPs), training time",
         "yes" if card["metrics"].get("training_flops") else "partly", "summary.json"),
        ("Annex XI 2(e)", "Known or estimated energy consumption", *_energy_evidence(_energy(ctx["summary"]))),
        ("Annex XI section 2", "Systemic-risk models: evaluation strategies, adversarial testing", "no",
         "outside this run"),
    ]
    return [{"id": a, "heading": h, "covered": c, "where": w} for a, h, c, w in rows]


def _energy(summary: dict[str, Any]) -> dict[str, Any] | None:
    """summary.json's energy figures (steward.train.energy), None when the run metered none."""
    e = summary.get("energy")
    return e if isinstance(e, dict) and _num(e.get("energy_j")) is not None else None


def _energy_evidence(e: dict[str, Any] | None) -> tuple[str, str]:
    """Annex XI 2(e)'s coverage and evidence: measured counters cover it, an estimate partly."""
    if e is None:
        return "no", "not metered (energy.enabled false, or a run from before the meter)"
    how = f"measured ({e.get('source')})" if e.get("measured") else f"estimated ({e.get('source')})"
    return ("yes" if e.get("measured") else "partly",
            f"summary.json energy: {_num(e['energy_j']):.6g} J, {how}; report section Energy")


# ---- the report ----------------------------------------------------------------------------------


def _model_card(ctx: dict[str, Any]) -> dict[str, Any]:
    f, summary, config = ctx["facts"], ctx["summary"], ctx["config"]
    provided = ctx["card_provided"]
    model = config.get("model", {})
    started = f["started"] or {}
    n_params = _num(summary.get("num_params"))
    tokens = _num(summary.get("tokens_seen"))
    fpt = _num(summary.get("flops_per_token"))
    flops = fpt * tokens if fpt and tokens else (6 * n_params * tokens if n_params and tokens else None)
    val = _num(summary.get("final_val_loss"))
    sheets = ctx["datasheets"]
    biases = [f"{s['name']}: {s['datasheet'].get('known_biases')}" for s in sheets if s["datasheet"].get("known_biases")]
    personal = [f"{s['name']}: {s['datasheet'].get('personal_data')}" for s in sheets
                if s["datasheet"].get("personal_data")]
    open_risks = [f"{r['id']} {r['title']} ({r['objective']}, {r['rating']}, {r['status']})" for r in ctx["risks"]
                  if r["status"] == "open"]
    code = started.get("code", {})
    caveats = [
        f"Trained for {summary.get('steps', '?')} steps on {int(tokens) if tokens else '?'} tokens.",
        "Evaluated only by next-token loss on documents held out from the same sources; no task, fairness or "
        "safety evaluation was recorded for this run." if "fairness" not in summary else
        "Fairness figures were recorded (see metrics).",
    ]
    if code.get("dirty"):
        caveats.append("Trained from a checkout with uncommitted changes (identified by their hash only).")
    warned = [d for d in f["decisions"] if d.get("effect") == "warn"]
    if warned:
        caveats.append(f"{len(warned)} policy warnings: " + "; ".join(sorted({d['rule'] for d in warned})) + ".")
    if f["status"] != "finished":
        caveats.append(f"The run did not finish (status: {f['status']}).")
    return {
        "model_details": {
            "name": started.get("job_name") or config.get("job", {}).get("name", ""),
            "description": provided.get("description", ""),
            "architecture": "decoder-only transformer language model (RMSNorm, RoPE, SwiGLU, grouped-query attention)"
            if not model.get("hf_path") else f"Hugging Face causal LM from {model['hf_path']}",
            "flavor": model.get("hf_path") or model.get("flavor"),
            "parameters": int(n_params) if n_params else None,
            "inputs_outputs": f"text in, next-token distribution out ({config.get('data', {}).get('tokenizer', 'byte')} "
                              "tokenizer)",
            "version": f"run {f['run_id']}, steward {code.get('version')}",
            "trained_by": f["actor"],
            "date": (f["finished"] or {}).get("time") or started.get("time"),
            "license": provided.get("license", "not stated (set governance.model_card)"),
            "owner": provided.get("owner", f["actor"]),
            "config_sha256": started.get("config_sha256"),
        },
        "intended_use": provided.get("intended_use") or (
            "Not stated by the model's owner (set governance.model_card). Intended uses of the training data: "
            + "; ".join(f"{s['name']}: {s['datasheet'].get('intended_use', 'not stated')}" for s in sheets)),
        "out_of_scope_use": provided.get("out_of_scope_use", "not stated"),
        "training_data": [{"name": d["name"], "split": d.get("split"), "documents": d.get("documents"),
                           "tokens": d.get("tokens"), "license": d.get("license"), "fingerprint": d.get("fingerprint")}
                          for d in (x.get("dataset", {}) for x in f["datasets"])],
        "metrics": {
            "initial_loss": _num(summary.get("initial_loss")),
            "final_loss": _num(summary.get("final_loss")),
            "first_val_loss": _num(summary.get("first_val_loss")),
            "final_val_loss": val,
            "final_val_perplexity": math.exp(val) if val is not None and val < 50 else None,
            "tokens_per_s": _num(summary.get("tokens_per_s")),
            "train_time_s": _num(summary.get("train_time_s")),
            "peak_memory_bytes": _num(summary.get("peak_memory_bytes")),
            "world_size": summary.get("world_size"),
            "training_flops": flops,
            "fairness": summary.get("fairness"),
        },
        "ethical_considerations": provided.get("ethical_considerations") or " ".join(
            [("Known biases of the training data: " + " | ".join(biases) + ".") if biases else
             "No known biases were recorded for the training data.",
             ("Personal data: " + " | ".join(personal) + ".") if personal else "",
             ("Open risks: " + "; ".join(open_risks) + ".") if open_risks else ""]).strip(),
        "caveats": provided.get("caveats") or " ".join(caveats),
    }


def build_report(
    run_dir: str | Path,
    *,
    workspace: Workspace | None = None,
    store: AuditStore | None = None,
    run_id: str | None = None,
    ws_store: AuditStore | None = None,
    public_keys: list[str] | tuple[str, ...] = (),
    against: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    run_dir = Path(run_dir)
    opened: list[AuditStore] = []
    try:
        if store is None or run_id is None or workspace is None:
            ref = load_run_ref(run_dir, str(workspace.root) if workspace else "")
            workspace, run_id = ref.workspace, ref.run_id
            store = ref.open_store()
            opened.append(store)
        if ws_store is None:
            url = workspace.store_url
            if store.is_at(url):
                ws_store = store
            elif not url.startswith("sqlite:///") or Path(url[len("sqlite:///"):]).is_file():
                ws_store = AuditStore(url, create=False)
                opened.append(ws_store)
        return _build(run_dir, workspace, store, run_id, ws_store, public_keys, against)
    finally:
        for s in opened:
            s.close()


def _verify_logs(run_dir: Path, workspace: Workspace, store: AuditStore, ws_store: AuditStore | None,
                 trusted: list, against: list[str] | tuple[str, ...],
                 registry: Registry) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The run's audit log verified as `steward audit verify RUN_DIR` verifies it (the log its run.json
    names, against the published heads: heads.jsonl, its governance.publish_heads, `against`); and the
    workspace store's log (None without one, the same result when it is the run's store)."""
    try:
        ref = load_run_ref(run_dir, str(workspace.root))
        published, log_id = ref.published_heads(against), ref.log_id
    except GovernanceError:  # no run.json to name the log (a store handed in without its run)
        published, log_id = workspace.published_heads(against), ""
    audit = verify_store(store, trusted, published, log_id=log_id, registry=registry)
    audit_d = {**audit.to_dict(), "line": audit.line()}
    if ws_store is None:
        return audit_d, None
    if ws_store is store:
        return audit_d, audit_d
    r = verify_store(ws_store, trusted, published, registry=registry)
    return audit_d, {**r.to_dict(), "line": r.line()}


def _workspace_records(ws_store: AuditStore | None) -> tuple[list[dict[str, Any]], int]:
    """The risk register and the number of risk updates of the workspace store (none without one)."""
    if ws_store is None:
        return [], 0
    risks = [r.to_dict() for r in register(ws_store)]
    return risks, len(ws_store.entries(types=["risk.updated"]))


def _keys_acted(registry: Registry, facts: dict[str, Any], signers: list[str]) -> list[dict[str, Any]]:
    """Every key that acted for the run: the trainer's personal key (when run.started carries one),
    each approval's personal key (and whether it verifies against the registry), the log's signing keys."""
    started = facts["started"] or {}
    rows = []
    if (started.get("trainer_key") or {}).get("key_id"):
        rows.append({"role": "trainer", "actor": facts["actor"], "key_id": started["trainer_key"]["key_id"],
                     "registered_for": registry.names_of(started["trainer_key"]["key_id"]), "verified": None})
    theirs = trainer_keys(registry, started)
    for a in signed_approvals(registry, facts):
        rows.append({"role": "approver", "actor": a.get("actor"), "key_id": a["key_id"] or None, "entry": a["seq"],
                     "registered_for": registry.names_of(a["key_id"]), "verified": a["verified"],
                     "registered_by": sorted({k.by for k in registry.keys if k.key_id == a["key_id"]}),
                     "trainer_key": a["key_id"] in theirs, "problem": a["problem"]})
    rows += [{"role": "log signer (workspace key)", "actor": None, "key_id": k, "registered_for": [], "verified": None}
             for k in signers]
    return rows


def _read_summary(run_dir: Path, facts: dict[str, Any]) -> dict[str, Any]:
    """summary.json, else the summary recorded in run.finished (empty when neither is there)."""
    summary_path = run_dir / "summary.json"
    summary = {}
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except ValueError:
            summary = {}
    if not summary and facts["finished"]:
        summary = facts["finished"].get("summary", {})
    return summary


def _datasheets(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """One datasheet per dataset name of the data.ingested events, with a row per split."""
    sheets: dict[str, dict[str, Any]] = {}
    for d in facts["datasets"]:
        ds = d.get("dataset", {})
        s = sheets.setdefault(ds.get("name", "dataset"), {"name": ds.get("name", "dataset"),
                                                           "datasheet": ds.get("datasheet", {}),
                                                           "origin": ds.get("datasheet_origin", []),
                                                           "license": ds.get("license"), "splits": []})
        s["splits"].append({"split": ds.get("split"), "fingerprint": ds.get("fingerprint"),
                            "documents": ds.get("documents"), "tokens": ds.get("tokens")})
    return list(sheets.values())


def _provided_card(config: dict[str, Any]) -> dict[str, str]:
    """The prose of governance.model_card; empty when none is set or it cannot be read."""
    gcfg = config.get("governance", {}) if isinstance(config.get("governance"), dict) else {}
    if gcfg.get("model_card"):
        try:
            return load_model_card(gcfg["model_card"])
        except GovernanceError:
            return {}
    return {}


def _context(run_dir: Path, workspace: Workspace, store: AuditStore, run_id: str, ws_store: AuditStore | None,
             trusted: list, against: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """What the report's sections are made of: the verified logs, the run's facts and files, the workspace's records."""
    registry = load_registry(ws_store) if ws_store is not None else Registry()
    audit_d, ws_audit = _verify_logs(run_dir, workspace, store, ws_store, trusted, against, registry)
    facts = run_facts(store, run_id)
    roles = registry.role_map()
    risks, risk_updates = _workspace_records(ws_store)
    config = read_config(run_dir) or (facts["started"] or {}).get("config", {})
    recorded_hash = (facts["started"] or {}).get("config_sha256", "")
    config_matches = (config_sha256(read_config(run_dir)) == recorded_hash) if (run_dir / "config.toml").is_file() \
        else None
    prov = None
    if (run_dir / "provenance.json").is_file():
        keys = trusted or store.public_keys()
        prov = verify_provenance(run_dir, keys, key_trust="trusted" if trusted else "store",
                                 recorded=recorded_for_provenance(store, facts))
    metrics = load_metrics(run_dir)
    key_mode = None
    if workspace.key_path.is_file():
        key_mode = f"mode {workspace.key_path.stat().st_mode & 0o777:04o}"
    return {
        "facts": facts, "audit": audit_d, "workspace_audit": ws_audit, "provenance": prov, "roles": roles,
        "risks": risks, "risk_updates": risk_updates, "config": config, "summary": _read_summary(run_dir, facts),
        "config_matches": config_matches, "config_hash": recorded_hash or "", "metrics": metrics,
        "n_metrics": len(metrics), "store_url": store.display_url,
        "workspace_store_url": ws_store.display_url if ws_store else "", "heads_file": str(workspace.heads_file),
        "key_mode": key_mode, "datasheets": _datasheets(facts), "card_provided": _provided_card(config),
        "actors": {e.actor for e in store.entries(run_id=run_id)},
        "keys": _keys_acted(registry, facts, audit_d.get("signers") or []),
    }


def _series(metrics: list[dict[str, Any]]) -> dict[str, list[list[Any]]]:
    """[step, value] pairs of the loss, validation loss and throughput curves (finite values only)."""
    return {name: [[m["step"], m[name]] for m in metrics if _num(m.get(name)) is not None and "step" in m]
            for name in ("loss", "val_loss", "tokens_per_s")}


def _build(run_dir, workspace, store, run_id, ws_store, public_keys, against) -> dict[str, Any]:
    import steward

    ctx = _context(run_dir, workspace, store, run_id, ws_store, workspace.trusted_keys(public_keys), against)
    facts, prov = ctx["facts"], ctx["provenance"]
    started = facts["started"] or {}
    card = _model_card(ctx)
    ctx["card"] = card
    return jsonable({
        "format": "steward-report/1",
        "generated": utc_now(),
        "steward_version": steward.__version__,
        "run": {"id": run_id, "run_dir": str(run_dir.resolve()), "status": facts["status"], "actor": facts["actor"],
                "started": started.get("time"), "ended": (facts["finished"] or facts["failed"] or {}).get("time"),
                "store": store.display_url, "log_id": store.log_id, "failure": (facts["failed"] or {}).get("message")},
        "model_card": card,
        "datasheets": ctx["datasheets"],
        "series": _series(ctx["metrics"]),
        "iso27001": _iso27001(ctx),
        "iso23894": _iso23894(ctx),
        "eu_ai_act": _eu_ai_act(ctx),
        "energy": _energy(ctx["summary"]),
        "policy": started.get("policy"),
        "decisions": [{k: d.get(k) for k in ("seq", "time", "actor", "stage", "rule", "subject", "effect", "message",
                                              "error")} for d in facts["decisions"]],
        "approvals": [{**{k: a.get(k) for k in ("seq", "time", "actor", "note")}, "key_id": a.get("approver_key_id")}
                      for a in facts["approvals"]],
        "keys": ctx["keys"],
        "releases": [{k: a.get(k) for k in ("seq", "time", "actor", "checkpoint")} for a in facts["releases"]],
        "roles": ctx["roles"],
        "risks": ctx["risks"],
        "lineage": {"code": started.get("code"), "environment": started.get("environment"),
                    "config_sha256": started.get("config_sha256", ""),
                    "checkpoints": [{k: c.get(k) for k in ("step", "path", "manifest_sha256", "num_files")}
                                    for c in facts["checkpoints"]]},
        "audit": ctx["audit"],
        "workspace_audit": ctx["workspace_audit"],
        "provenance": {k: v for k, v in prov.items() if k != "statement"} if prov else None,
        "explanations": _read_explanations(run_dir),
        "cross_domain": _read_cross_domain(run_dir),
        "fairness_domains": _read_run_json(run_dir, "fairness/domains.json",
                                           ("sources", "size", "after", "before", "adversary_effect")),
        "drift": _read_run_json(run_dir, "drift/report.json", ("detectors", "window", "reference_windows", "alpha",
                                                                "action", "windows_scored", "alarms", "alerts",
                                                                "history", "calibrations", "stopped")),
    })


def _read_run_json(run_dir: Path, rel: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The `keys` of the JSON file RUN_DIR/rel, if present; {"error": ...} when it is not valid JSON."""
    path = Path(run_dir) / rel
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return {"error": f"{path} is not valid JSON"}
    return {k: data.get(k) for k in keys}


def _read_explanations(run_dir: Path) -> dict[str, Any] | None:
    """RUN_DIR/explain/faithfulness.json, written by `steward explain RUN_DIR --global`, if present."""
    return _read_run_json(run_dir, "explain/faithfulness.json",
                          ("table", "rules", "fairness_flags", "fitted_on", "held_out", "method", "data"))


def _read_cross_domain(run_dir: Path) -> dict[str, Any] | None:
    """RUN_DIR/eval/domains.json, written by `steward eval`, if present."""
    return _read_run_json(run_dir, "eval/domains.json", ("domains", "runs", "matrix", "max_windows"))


def generate_report(run_dir: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Build and write RUN_DIR/report.json and report.html; returns their paths and the report."""
    run_dir = Path(run_dir)
    report = build_report(run_dir, **kwargs)
    json_path, html_path = run_dir / "report.json", run_dir / "report.html"
    atomic_write_text(json_path, json.dumps(report, indent=2, sort_keys=True) + "\n", mode=0o644)
    atomic_write_text(html_path, render_html(report), mode=0o644)
    return {"html": str(html_path), "json": str(json_path), "report": report}
