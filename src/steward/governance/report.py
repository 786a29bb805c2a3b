"""`steward report RUN_DIR`: report.json and a self-contained report.html (inline CSS and SVG, no
scripts, no network) for an auditor.

Sections: model card (after Mitchell et al., "Model Cards for Model Reporting", FAT* 2019), a
datasheet per dataset, loss and throughput charts, an evidence table per ISO/IEC 27001:2022
Annex A control and per ISO/IEC 23894:2023 clause-6 activity (what was recorded, where, whether it
was verified), the EU AI Act Annex IV / XI headings the evidence covers, policy decisions, the
risk register, and the audit log's verification result.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from steward.governance._util import GovernanceError, jsonable, read_toml_file, utc_now
from steward.governance.access import current_roles
from steward.governance.lineage import config_sha256
from steward.governance.provenance import verify_provenance
from steward.governance.risk import register
from steward.governance.runs import load_run_ref, read_config, recorded_for_provenance, run_facts
from steward.governance.store import AuditStore
from steward.governance.verify import verify_store
from steward.governance.workspace import Workspace, read_heads
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


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


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
             f"{counts.get('monitor.alert', 0) + counts.get('fairness.alert', 0)} alerts",
             "metrics.jsonl; eval.completed, fairness.evaluated, monitor.alert events",
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
        ("Annex XI 2(e)", "Known or estimated energy consumption", "no", "not measured"),
        ("Annex XI section 2", "Systemic-risk models: evaluation strategies, adversarial testing", "no",
         "outside this run"),
    ]
    return [{"id": a, "heading": h, "covered": c, "where": w} for a, h, c, w in rows]


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
            if url == store.url.render_as_string(hide_password=False):
                ws_store = store
            elif not url.startswith("sqlite:///") or Path(url[len("sqlite:///"):]).is_file():
                ws_store = AuditStore(url, create=False)
                opened.append(ws_store)
        return _build(run_dir, workspace, store, run_id, ws_store, public_keys, against)
    finally:
        for s in opened:
            s.close()


def _build(run_dir, workspace, store, run_id, ws_store, public_keys, against) -> dict[str, Any]:
    import steward

    trusted = workspace.trusted_keys(public_keys)
    published = []
    if workspace.heads_file.is_file():
        published += read_heads(workspace.heads_file, store.log_id)
    for a in against:
        published += read_heads(a, store.log_id)
    audit = verify_store(store, trusted, published)
    audit_d = {**audit.to_dict(), "line": audit.line()}
    facts = run_facts(store, run_id)
    ws_audit = None
    roles: dict[str, list[str]] = {}
    risks: list[dict[str, Any]] = []
    risk_updates = 0
    if ws_store is not None:
        if ws_store is store:
            ws_audit = audit_d
        else:
            ws_pub = read_heads(workspace.heads_file, ws_store.log_id) if workspace.heads_file.is_file() else []
            r = verify_store(ws_store, trusted, ws_pub)
            ws_audit = {**r.to_dict(), "line": r.line()}
        roles = current_roles(ws_store)
        risks = [r.to_dict() for r in register(ws_store)]
        risk_updates = len(ws_store.entries(types=["risk.updated"]))
    config = read_config(run_dir) or (facts["started"] or {}).get("config", {})
    summary_path = run_dir / "summary.json"
    summary = {}
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except ValueError:
            summary = {}
    if not summary and facts["finished"]:
        summary = facts["finished"].get("summary", {})
    recorded_hash = (facts["started"] or {}).get("config_sha256", "")
    config_matches = (config_sha256(read_config(run_dir)) == recorded_hash) if (run_dir / "config.toml").is_file() \
        else None
    prov = None
    if (run_dir / "provenance.json").is_file():
        keys = trusted or store.public_keys()
        prov = verify_provenance(run_dir, keys, key_trust="trusted" if trusted else "store",
                                 recorded=recorded_for_provenance(store, facts))
    metrics = load_metrics(run_dir)
    sheets: dict[str, dict[str, Any]] = {}
    for d in facts["datasets"]:
        ds = d.get("dataset", {})
        s = sheets.setdefault(ds.get("name", "dataset"), {"name": ds.get("name", "dataset"),
                                                           "datasheet": ds.get("datasheet", {}),
                                                           "origin": ds.get("datasheet_origin", []),
                                                           "license": ds.get("license"), "splits": []})
        s["splits"].append({"split": ds.get("split"), "fingerprint": ds.get("fingerprint"),
                            "documents": ds.get("documents"), "tokens": ds.get("tokens")})
    gcfg = config.get("governance", {}) if isinstance(config.get("governance"), dict) else {}
    card_provided: dict[str, str] = {}
    if gcfg.get("model_card"):
        try:
            card_provided = load_model_card(gcfg["model_card"])
        except GovernanceError:
            card_provided = {}
    key_mode = None
    if workspace.key_path.is_file():
        key_mode = f"mode {workspace.key_path.stat().st_mode & 0o777:04o}"
    ctx: dict[str, Any] = {
        "facts": facts, "audit": audit_d, "workspace_audit": ws_audit, "provenance": prov, "roles": roles,
        "risks": risks, "risk_updates": risk_updates, "config": config, "summary": summary,
        "config_matches": config_matches, "config_hash": recorded_hash or "", "n_metrics": len(metrics),
        "store_url": store.display_url, "workspace_store_url": ws_store.display_url if ws_store else "",
        "heads_file": str(workspace.heads_file), "key_mode": key_mode, "datasheets": list(sheets.values()),
        "card_provided": card_provided,
        "actors": {e.actor for e in store.entries(run_id=run_id)},
    }
    card = _model_card(ctx)
    ctx["card"] = card
    return jsonable({
        "format": "steward-report/1",
        "generated": utc_now(),
        "steward_version": steward.__version__,
        "run": {"id": run_id, "run_dir": str(run_dir.resolve()), "status": facts["status"], "actor": facts["actor"],
                "started": (facts["started"] or {}).get("time"), "ended": (facts["finished"] or facts["failed"] or {})
                .get("time"), "store": store.display_url, "log_id": store.log_id,
                "failure": (facts["failed"] or {}).get("message")},
        "model_card": card,
        "datasheets": list(sheets.values()),
        "series": {
            "loss": [[m["step"], m["loss"]] for m in metrics if _num(m.get("loss")) is not None and "step" in m],
            "val_loss": [[m["step"], m["val_loss"]] for m in metrics if _num(m.get("val_loss")) is not None
                         and "step" in m],
            "tokens_per_s": [[m["step"], m["tokens_per_s"]] for m in metrics
                             if _num(m.get("tokens_per_s")) is not None and "step" in m],
        },
        "iso27001": _iso27001(ctx),
        "iso23894": _iso23894(ctx),
        "eu_ai_act": _eu_ai_act(ctx),
        "policy": (facts["started"] or {}).get("policy"),
        "decisions": [{k: d.get(k) for k in ("seq", "time", "actor", "stage", "rule", "subject", "effect", "message",
                                              "error")} for d in facts["decisions"]],
        "approvals": [{k: a.get(k) for k in ("seq", "time", "actor", "note")} for a in facts["approvals"]],
        "releases": [{k: a.get(k) for k in ("seq", "time", "actor", "checkpoint")} for a in facts["releases"]],
        "roles": roles,
        "risks": risks,
        "lineage": {"code": (facts["started"] or {}).get("code"), "environment": (facts["started"] or {}).get(
            "environment"), "config_sha256": recorded_hash, "checkpoints": [
            {k: c.get(k) for k in ("step", "path", "manifest_sha256", "num_files")} for c in facts["checkpoints"]]},
        "audit": audit_d,
        "workspace_audit": ws_audit,
        "provenance": {k: v for k, v in prov.items() if k != "statement"} if prov else None,
        "explanations": _read_explanations(run_dir),
    })


def _read_explanations(run_dir: Path) -> dict[str, Any] | None:
    """RUN_DIR/explain/faithfulness.json, written by `steward explain RUN_DIR --global`, if present."""
    path = Path(run_dir) / "explain" / "faithfulness.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return {"error": f"{path} is not valid JSON"}
    return {k: data.get(k) for k in ("table", "rules", "fairness_flags", "fitted_on", "held_out", "method", "data")}


# ---- HTML ----------------------------------------------------------------------------------------


def _e(v: Any) -> str:
    if v is None:
        return "&mdash;"
    if isinstance(v, (list, tuple)):
        return ", ".join(_e(x) for x in v) or "&mdash;"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, dict):
        return html.escape(json.dumps(v, sort_keys=True))
    if isinstance(v, float):
        return html.escape(f"{v:.6g}")
    return html.escape(str(v))


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    out, v = [], start
    while v <= hi + 1e-12 and len(out) < 12:
        out.append(v)
        v += step
    return out


# presentation attributes, not CSS classes: the charts look the same in any viewer
_FONT = 'font-family="system-ui, sans-serif"'
_TICK = f'{_FONT} font-size="11" fill="#4a5468"'
_TITLE = f'{_FONT} font-size="13" font-weight="600" fill="#1d2433"'


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def svg_chart(title: str, series: list[tuple[str, list[list[float]], str]], ylabel: str,
              width: int = 680, height: int = 260) -> str:
    """A line chart as inline SVG; `series` is (label, [[x, y], ...], colour)."""
    pts = [p for _, s, _ in series for p in s]
    if not pts:
        return f'<p class="muted">{_e(title)}: no data recorded.</p>'
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    pad = (y1 - y0) * 0.05 or abs(y1) * 0.05 or 1.0
    y0, y1 = y0 - pad, y1 + pad
    left, right, top, bottom = 70, 16, 28, 40
    w, h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * w

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{_e(title)}" class="chart">',
             f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
             f'<text x="{left}" y="18" {_TITLE}>{_e(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#b8c2d6"/>']
    for t in _ticks(y0, y1):
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#eef1f6"/>'
                     f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" {_TICK} text-anchor="end">{_fmt(t)}</text>')
    for t in _ticks(x0, x1):
        parts.append(f'<text x="{sx(t):.1f}" y="{top + h + 16}" {_TICK} text-anchor="middle">{_fmt(t)}</text>')
    parts.append(f'<text x="{left + w / 2}" y="{height - 6}" {_TICK} text-anchor="middle">step</text>')
    parts.append(f'<text x="12" y="{top + h / 2}" {_TICK} transform="rotate(-90 12 {top + h / 2})" '
                 f'text-anchor="middle">{_e(ylabel)}</text>')
    lx = left + 9 * len(title) + 24  # the legend sits on the title line, clear of the data
    for label, s, colour in series:
        if not s:
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        if len(s) <= 60:
            parts.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.4" fill="{colour}"/>' for x, y in s)
        parts.append(f'<rect x="{lx}" y="9" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{lx + 14}" y="18" {_TICK}>{_e(label)}</text>')
        lx += 14 + 7 * len(label) + 18
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> str:
    if not rows:
        return '<p class="muted">none recorded</p>'
    head = "".join(f"<th>{_e(t)}</th>" for _, t in cols)
    body = []
    for r in rows:
        cells = []
        for k, _ in cols:
            v = r.get(k)
            if k == "verified":
                cells.append('<td class="ok">verified</td>' if v is True else '<td class="bad">FAILED</td>'
                             if v is False else '<td class="muted">recorded</td>')
            elif k == "effect":
                cls = {"allow": "ok", "deny": "bad", "warn": "warn"}.get(str(v), "")
                cells.append(f'<td class="{cls}">{_e(v)}</td>')
            elif k == "covered":
                cls = {"yes": "ok", "partly": "warn", "no": "muted"}.get(str(v), "")
                cells.append(f'<td class="{cls}">{_e(v)}</td>')
            else:
                cells.append(f"<td{_long(v)}>{_e(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='tw'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def _long(v: Any) -> str:
    """Cells with a long unbreakable token (a digest, a path, a URL) may break anywhere."""
    return ' class="h"' if any(len(tok) > 28 for tok in str(v).split()) else ""


def _kv(d: dict[str, Any]) -> str:
    return "<table class='kv'>" + "".join(f"<tr><th>{_e(k)}</th><td{_long(v)}>{_e(v)}</td></tr>"
                                          for k, v in d.items()) + "</table>"


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d2433;max-width:1080px;margin:2em auto;
padding:0 1em}h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #dde3ee;padding-bottom:.2em;margin-top:2em}
h3{margin-bottom:.3em}table{border-collapse:collapse;width:100%;margin:.5em 0 1em;font-size:13px}
th,td{border:1px solid #dde3ee;padding:4px 7px;text-align:left;vertical-align:top}th{background:#f3f6fb}
table.kv th{width:24%}.ok{color:#1a7f37;font-weight:600}.bad{color:#c62828;font-weight:700}.warn{color:#9a6700}
.muted{color:#6b7385}.banner{padding:.7em 1em;border-radius:6px;margin:1em 0;font-weight:600}
.banner.ok{background:#e6f4ea}.banner.bad{background:#fdecea}.chart{margin:.5em 0;display:block}
td{overflow-wrap:break-word}td.h{word-break:break-all}.tw{overflow-x:auto}td.ok,td.bad,td.warn,td.muted{white-space:nowrap}
th{white-space:nowrap}
"""


def _fairness_section(fair: Any) -> list[str]:
    """The final fairness evaluation of a classify run (summary.json["fairness"], written by
    steward.fairness.monitor): one row per identity family. Empty when the run recorded none."""
    if not isinstance(fair, dict) or not isinstance(fair.get("mean_abs_gap"), dict):
        return []
    ci = fair.get("ci", {}) if isinstance(fair.get("ci"), dict) else {}
    rows = []
    for fam, gap in fair["mean_abs_gap"].items():
        lo_hi = ci.get(f"mean_abs_gap/{fam}")
        rows.append({
            "family": fam, "gap": _num(gap),
            "ci": f"[{lo_hi[0]:.4f}, {lo_hi[1]:.4f}]" if isinstance(lo_hi, list) and len(lo_hi) == 2 else "",
            "dp": _num(fair.get("demographic_parity_difference", {}).get(fam)),
            "eo": _num(fair.get("equalized_odds_difference", {}).get(fam)),
        })
    return [
        "<h2>Fairness</h2>",
        f"<p>Held-out identity set of {_e(fair.get('n'))} examples: overall AUC {_e(_num(fair.get('overall_auc')))}, "
        f"Jigsaw final score {_e(_num(fair.get('final_score')))}. Gap: mean |bias AUC - overall AUC| over the "
        "family's subgroups and the subgroup, BPSN and BNSP AUCs (Borkan et al. 2019).</p>",
        _table(rows, [("family", "family"), ("gap", "mean |gap|"), ("ci", "95% interval"),
                      ("dp", "demographic parity diff."), ("eo", "equalized odds diff.")]),
    ]


def _explanations_section(ex: Any) -> list[str]:
    """The global rule list and its faithfulness table (`steward explain --global`), and the rules that
    use identity terms, listed as possible spurious correlations. Empty when none was written."""
    if not isinstance(ex, dict):
        return []
    if ex.get("error"):
        return ["<h2>Explanations</h2>", f"<p class='bad'>{_e(ex['error'])}</p>"]
    rows = [{"method": name, "comp": _num(row.get("aopc_comprehensiveness")), "suff": _num(row.get("aopc_sufficiency")),
             "fidelity": _num(row.get("fidelity")), "rules": row.get("n_rules")}
            for name, row in (ex.get("table") or {}).items() if isinstance(row, dict)]
    flags = ex.get("fairness_flags") or []
    return [
        "<h2>Explanations</h2>",
        f"<p>Global rule list fitted on {_e(ex.get('fitted_on'))} texts of {_e(ex.get('data'))}, measured on "
        f"{_e(ex.get('held_out'))} held-out texts. ERASER comprehensiveness and sufficiency AOPC (DeYoung et al. "
        "2020); fidelity is the share of held-out predictions the rules reproduce.</p>",
        _table(rows, [("method", "method"), ("comp", "comprehensiveness AOPC"), ("suff", "sufficiency AOPC"),
                      ("fidelity", "rule fidelity"), ("rules", "rules")]),
        "<h3>Rules</h3><ol>" + "".join(f"<li>{_e(x)}</li>" for x in ex.get("rules") or []) + "</ol>",
        "<h3>Possible spurious correlations (rules that use identity terms)</h3>",
        (_table([{"rule": f.get("rule"), "sentence": f.get("sentence"), "terms": ", ".join(f.get("identity_terms", []))}
                 for f in flags], [("rule", "rule"), ("sentence", "rule"), ("terms", "identity terms")])
         if flags else "<p class='muted'>none of the rules uses an identity term</p>"),
    ]


def render_html(r: dict[str, Any]) -> str:
    run, card, audit = r["run"], r["model_card"], r["audit"]
    ok = audit["ok"]
    banner = (f'<div class="banner ok">Audit log verified: {_e(audit["line"])}</div>' if ok else
              f'<div class="banner bad">Audit log verification FAILED: {_e(audit["error"])}</div>')
    prov = r.get("provenance")
    prov_html = ("<p class='muted'>no provenance.json (no checkpoint was saved)</p>" if not prov else
                 f"<p class='{'ok' if prov['ok'] else 'bad'}'>provenance.json: "
                 f"{'verified, ' + str(prov['subjects_checked']) + ' files match their attested digests' if prov['ok'] else _e(prov['error'])}</p>")
    s = r["series"]
    charts = (svg_chart("Loss", [("train loss", s["loss"], "#2f6fde"), ("validation loss", s["val_loss"], "#d9480f")],
                        "loss")
              + svg_chart("Throughput", [("tokens/s", s["tokens_per_s"], "#2b8a3e")], "tokens per second"))
    sheets = []
    for d in r["datasheets"]:
        sheet = {k: v for k, v in d["datasheet"].items() if k != "references"}
        refs = d["datasheet"].get("references", [])
        sheets.append(f"<h3>{_e(d['name'])}</h3>" + _kv({**sheet, "licenses (SPDX)": d.get("license"),
                                                        "datasheet from": ", ".join(d.get("origin", []))})
                      + (("<p class='muted'>References: " + "; ".join(_e(x) for x in refs) + "</p>") if refs else "")
                      + _table(d["splits"], [("split", "split"), ("documents", "documents"), ("tokens", "tokens"),
                                             ("fingerprint", "fingerprint")]))
    md = card["model_details"]
    lineage = r["lineage"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Steward report: {_e(md.get('name'))} ({_e(run['id'])})</title><style>{_CSS}</style></head><body>",
        f"<h1>Steward report: {_e(md.get('name'))}</h1>",
        f"<p class='muted'>run {_e(run['id'])} &middot; status {_e(run['status'])} &middot; generated "
        f"{_e(r['generated'])} by steward {_e(r['steward_version'])} &middot; {_e(run['run_dir'])}</p>",
        banner,
        (f"<p class='bad'>The run failed: {_e(run.get('failure'))}</p>" if run.get("failure") else ""),
        "<h2>Model card</h2><h3>Model details</h3>", _kv(md),
        "<h3>Intended use</h3>", f"<p>{_e(card['intended_use'])}</p>",
        f"<p><b>Out of scope:</b> {_e(card['out_of_scope_use'])}</p>",
        "<h3>Training data</h3>",
        _table(card["training_data"], [("name", "dataset"), ("split", "split"), ("documents", "documents"),
                                       ("tokens", "tokens"), ("license", "license"), ("fingerprint", "fingerprint")]),
        "<h3>Metrics</h3>", _kv(card["metrics"]),
        "<h3>Ethical considerations</h3>", f"<p>{_e(card['ethical_considerations'])}</p>",
        "<h3>Caveats and recommendations</h3>", f"<p>{_e(card['caveats'])}</p>",
        "<h2>Training curves</h2>", charts,
        *_fairness_section(card["metrics"].get("fairness")),
        *_explanations_section(r.get("explanations")),
        "<h2>Datasheets</h2>", "".join(sheets) or "<p class='muted'>no datasets recorded</p>",
        "<h2>Evidence: ISO/IEC 27001:2022 Annex A controls</h2>",
        _table(r["iso27001"], [("id", "control"), ("title", "title"), ("recorded", "what was recorded"),
                               ("where", "where"), ("verified", "status"), ("detail", "detail")]),
        "<h2>Evidence: ISO/IEC 23894:2023 clause 6 risk management</h2>",
        _table(r["iso23894"], [("id", "clause"), ("title", "activity"), ("recorded", "what was recorded"),
                               ("where", "where"), ("verified", "status")]),
        "<h2>EU AI Act technical documentation headings (Annex IV, Annex XI)</h2>",
        "<p class='muted'>Which headings this run's records cover; 'no' means the provider must document it "
        "elsewhere.</p>",
        _table(r["eu_ai_act"], [("id", "annex"), ("heading", "heading"), ("covered", "covered"), ("where", "evidence")]),
        "<h2>Policy decisions</h2>",
        (_kv({k: v for k, v in (r.get("policy") or {}).items() if k != "rules"}) if r.get("policy") else
         "<p class='muted'>no policy (governance.policy = none)</p>"),
        _table(r["decisions"], [("seq", "entry"), ("stage", "stage"), ("rule", "rule"), ("subject", "subject"),
                                ("effect", "decision"), ("message", "message"), ("error", "error")]),
        "<h2>Approvals and releases</h2>",
        _table([{**a, "event": "approved"} for a in r["approvals"]] + [{**a, "event": "released"} for a in r["releases"]],
               [("seq", "entry"), ("event", "event"), ("time", "time"), ("actor", "actor"), ("note", "note")]),
        "<h2>Risk register (ISO/IEC 23894)</h2>",
        _table(r["risks"], [("id", "id"), ("title", "risk"), ("source", "source"), ("objective", "objective"),
                            ("likelihood", "L"), ("impact", "I"), ("level", "level"), ("rating", "rating"),
                            ("treatment", "treatment"), ("owner", "owner"), ("status", "status"),
                            ("evidence", "evidence")]),
        "<h2>Lineage</h2>", _kv({"config SHA-256": lineage.get("config_sha256"),
                                 **{f"code {k}": v for k, v in (lineage.get("code") or {}).items()},
                                 **{f"env {k}": v for k, v in (lineage.get("environment") or {}).items()}}),
        _table(lineage.get("checkpoints", []), [("step", "step"), ("path", "checkpoint"),
                                                ("manifest_sha256", "manifest SHA-256"), ("num_files", "files")]),
        prov_html,
        "<h2>Audit verification</h2>",
        _kv({k: audit.get(k) for k in ("ok", "store", "log_id", "entries", "root", "heads_checked",
                                        "published_heads_checked", "consistency_checks", "key_trust", "error")}),
        ("<p class='muted'>" + "<br>".join(_e(w) for w in audit.get("warnings", [])) + "</p>")
        if audit.get("warnings") else "",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def generate_report(run_dir: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Build and write RUN_DIR/report.json and report.html; returns their paths and the report."""
    run_dir = Path(run_dir)
    report = build_report(run_dir, **kwargs)
    json_path, html_path = run_dir / "report.json", run_dir / "report.html"
    atomic_write_text(json_path, json.dumps(report, indent=2, sort_keys=True) + "\n", mode=0o644)
    atomic_write_text(html_path, render_html(report), mode=0o644)
    return {"html": str(html_path), "json": str(json_path), "report": report}
