"""report.html: the report (steward.governance.report's dict) as one self-contained page, with the
loss and throughput charts as inline SVG. Escaping, tables and the page shell: steward.htmlpage."""

from __future__ import annotations

import math
from typing import Any

from steward.governance._util import finite_or_none as _num
from steward.htmlpage import esc, kv, page, table


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
        return f'<p class="muted">{esc(title)}: no data recorded.</p>'
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
             f'aria-label="{esc(title)}" class="chart">',
             f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
             f'<text x="{left}" y="18" {_TITLE}>{esc(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#b8c2d6"/>']
    for t in _ticks(y0, y1):
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#eef1f6"/>'
                     f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" {_TICK} text-anchor="end">{_fmt(t)}</text>')
    for t in _ticks(x0, x1):
        parts.append(f'<text x="{sx(t):.1f}" y="{top + h + 16}" {_TICK} text-anchor="middle">{_fmt(t)}</text>')
    parts.append(f'<text x="{left + w / 2}" y="{height - 6}" {_TICK} text-anchor="middle">step</text>')
    parts.append(f'<text x="12" y="{top + h / 2}" {_TICK} transform="rotate(-90 12 {top + h / 2})" '
                 f'text-anchor="middle">{esc(ylabel)}</text>')
    lx = left + 9 * len(title) + 24  # the legend sits on the title line, clear of the data
    for label, s, colour in series:
        if not s:
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        if len(s) <= 60:
            parts.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.4" fill="{colour}"/>' for x, y in s)
        parts.append(f'<rect x="{lx}" y="9" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{lx + 14}" y="18" {_TICK}>{esc(label)}</text>')
        lx += 14 + 7 * len(label) + 18
    parts.append("</svg>")
    return "".join(parts)


def _cell(key: str, v: Any) -> str | None:
    """The report's status columns, coloured: verified / FAILED / recorded, a policy effect, coverage."""
    if key == "verified":
        return ('<td class="ok">verified</td>' if v is True else '<td class="bad">FAILED</td>'
                if v is False else '<td class="muted">recorded</td>')
    if key == "effect":
        cls = {"allow": "ok", "deny": "bad", "warn": "warn"}.get(str(v), "")
        return f'<td class="{cls}">{esc(v)}</td>'
    if key == "covered":
        cls = {"yes": "ok", "partly": "warn", "no": "muted"}.get(str(v), "")
        return f'<td class="{cls}">{esc(v)}</td>'
    return None


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> str:
    return table(rows, cols, _cell)


def _fairness_section(fair: Any) -> list[str]:
    """The final fairness evaluation of a classify run (summary.json["fairness"], written by
    steward.classify.monitor): one row per identity family. Empty when the run recorded none."""
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
        f"<p>Held-out identity set of {esc(fair.get('n'))} examples: overall AUC {esc(_num(fair.get('overall_auc')))}, "
        f"Jigsaw final score {esc(_num(fair.get('final_score')))}. Gap: mean |bias AUC - overall AUC| over the "
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
        return ["<h2>Explanations</h2>", f"<p class='bad'>{esc(ex['error'])}</p>"]
    rows = [{"method": name, "comp": _num(row.get("aopc_comprehensiveness")), "suff": _num(row.get("aopc_sufficiency")),
             "fidelity": _num(row.get("fidelity")), "rules": row.get("n_rules")}
            for name, row in (ex.get("table") or {}).items() if isinstance(row, dict)]
    flags = ex.get("fairness_flags") or []
    return [
        "<h2>Explanations</h2>",
        f"<p>Global rule list fitted on {esc(ex.get('fitted_on'))} texts of {esc(ex.get('data'))}, measured on "
        f"{esc(ex.get('held_out'))} held-out texts. ERASER comprehensiveness and sufficiency AOPC (DeYoung et al. "
        "2020); fidelity is the share of held-out predictions the rules reproduce.</p>",
        _table(rows, [("method", "method"), ("comp", "comprehensiveness AOPC"), ("suff", "sufficiency AOPC"),
                      ("fidelity", "rule fidelity"), ("rules", "rules")]),
        "<h3>Rules</h3><ol>" + "".join(f"<li>{esc(x)}</li>" for x in ex.get("rules") or []) + "</ol>",
        "<h3>Possible spurious correlations (rules that use identity terms)</h3>",
        (_table([{"rule": f.get("rule"), "sentence": f.get("sentence"), "terms": ", ".join(f.get("identity_terms", []))}
                 for f in flags], [("rule", "rule"), ("sentence", "rule"), ("terms", "identity terms")])
         if flags else "<p class='muted'>none of the rules uses an identity term</p>"),
    ]


def _cross_domain_section(cd: Any) -> list[str]:
    """`steward eval`'s loss per evaluation domain (RUN_DIR/eval/domains.json): one row per run scored with
    this one, by the domain it trained on. Empty when none was written."""
    if not isinstance(cd, dict):
        return []
    if cd.get("error"):
        return ["<h2>Cross-domain evaluation</h2>", f"<p class='bad'>{esc(cd['error'])}</p>"]
    specs = [str(s) for s in cd.get("domains") or []]

    def cell(d: Any) -> str:
        loss, ppl = (_num(d.get("loss")), _num(d.get("perplexity"))) if isinstance(d, dict) else (None, None)
        return "" if loss is None or ppl is None else f"{loss:.4f} (ppl {ppl:.2f})"

    rows = [{"run": r.get("run_dir"), "trained": r.get("trained_on"),
             **{f"d{i}": cell((r.get("domains") or {}).get(s)) for i, s in enumerate(specs)}}
            for r in cd.get("runs") or [] if isinstance(r, dict)]
    return [
        "<h2>Cross-domain evaluation</h2>",
        f"<p>Next-token loss (and perplexity) on the held-out windows of each domain, at most "
        f"{esc(cd.get('max_windows'))} windows each (0: all); rows: the domain each run trained on.</p>",
        _table(rows, [("run", "run"), ("trained", "trained on"), *((f"d{i}", s) for i, s in enumerate(specs))]),
    ]


def _fairness_domains_section(fd: Any) -> list[str]:
    """`steward fairness domains`: each family's mean |gap| per domain (with the adversary's effect when a
    run without it was given) and its spread across the domains. Empty when none was written."""
    if not isinstance(fd, dict):
        return []
    if fd.get("error"):
        return ["<h2>Fairness across domains</h2>", f"<p class='bad'>{esc(fd['error'])}</p>"]
    after, effect = fd.get("after") or {}, fd.get("adversary_effect") or {}
    domains = after.get("domains") or {}
    families = list(next(iter(domains.values()), {}).get("mean_abs_gap") or {})
    rows = []
    for name, d in domains.items():
        row: dict[str, Any] = {"domain": name, "auc": f"{_num(d.get('overall_auc')) or 0:.3f}"}
        for f in families:
            gap, eff = _num((d.get("mean_abs_gap") or {}).get(f)), _num((effect.get(name) or {}).get(f))
            row[f] = "" if gap is None else f"{gap:.4f}" + ("" if eff is None else f" ({eff:+.4f})")
        rows.append(row)
    rows.append({"domain": "spread (max - min)", "auc": "",
                 **{f: f"{_num((after.get('spread') or {}).get(f, {}).get('spread')) or 0:.4f}" for f in families}})
    return [
        "<h2>Fairness across domains</h2>",
        f"<p>Mean |bias AUC - overall AUC| per identity family on the balanced test split ({esc(fd.get('size'))} rows) "
        "of each test-bed source; in brackets, the adversary's effect (this run minus the run without it) when "
        "one was given.</p>",
        _table(rows, [("domain", "domain"), ("auc", "AUC"), *((f, f) for f in families)]),
    ]


_DRIFT_COLOURS = {"tokens": "#1f77b4", "embedding": "#2ca02c", "loss": "#d62728"}


def _drift_section(dr: Any) -> list[str]:
    """The drift monitor of the run (RUN_DIR/drift/report.json, written by steward.train.drift): each
    detector's statistic over its threshold per window (1 is the threshold), the calibrations and the alerts."""
    if not isinstance(dr, dict):
        return []
    if dr.get("error"):
        return ["<h2>Data drift</h2>", f"<p class='bad'>{esc(dr['error'])}</p>"]
    history = [h for h in dr.get("history") or [] if isinstance(h, dict)]
    series = []
    for name in dr.get("detectors") or []:
        pts = [[h["step"], h[f"drift_{name}"] / h[f"drift_{name}_threshold"]] for h in history
               if _num(h.get(f"drift_{name}")) is not None and _num(h.get(f"drift_{name}_threshold"))]
        series.append((str(name), pts, _DRIFT_COLOURS.get(str(name), "#555")))
    alerts = [{"step": a.get("step"), "window": a.get("window"), "detectors": ", ".join(a.get("detectors") or []),
               "action": a.get("action"),
               "stats": "; ".join(f"{k} {_num(v) or 0:.4g} > {_num((a.get('thresholds') or {}).get(k)) or 0:.4g}"
                                  for k, v in (a.get("statistics") or {}).items() if k in (a.get("detectors") or []))}
              for a in dr.get("alerts") or [] if isinstance(a, dict)]
    return [
        "<h2>Data drift</h2>",
        f"<p>Detectors {esc(', '.join(map(str, dr.get('detectors') or [])))} on windows of {esc(dr.get('window'))} "
        f"steps, reference {esc(dr.get('reference_windows'))} windows, false-alarm rate {esc(dr.get('alpha'))} per "
        f"window (thresholds calibrated by permutation on the reference); {esc(dr.get('windows_scored'))} windows "
        f"scored, {esc(dr.get('alarms'))} alarms, action {esc(dr.get('action'))}.</p>",
        (f"<p class='bad'>{esc(dr['stopped'])}</p>" if dr.get("stopped") else ""),
        svg_chart("Drift statistic / threshold per window", series, "statistic / threshold"),
        _table(alerts, [("step", "step"), ("window", "window"), ("detectors", "detectors"),
                        ("stats", "statistic > threshold"), ("action", "action")]),
    ]


def _header(r: dict[str, Any]) -> list[str]:
    """Title line, run line, the audit banner and the failure (if the run failed)."""
    run, audit, md = r["run"], r["audit"], r["model_card"]["model_details"]
    banner = (f'<div class="banner ok">Audit log verified: {esc(audit["line"])}</div>' if audit["ok"] else
              f'<div class="banner bad">Audit log verification FAILED: {esc(audit["error"])}</div>')
    return [
        f"<h1>Steward report: {esc(md.get('name'))}</h1>",
        f"<p class='muted'>run {esc(run['id'])} &middot; status {esc(run['status'])} &middot; generated "
        f"{esc(r['generated'])} by steward {esc(r['steward_version'])} &middot; {esc(run['run_dir'])}</p>",
        banner,
        (f"<p class='bad'>The run failed: {esc(run.get('failure'))}</p>" if run.get("failure") else ""),
    ]


def _model_card_section(card: dict[str, Any]) -> list[str]:
    return [
        "<h2>Model card</h2><h3>Model details</h3>", kv(card["model_details"]),
        "<h3>Intended use</h3>", f"<p>{esc(card['intended_use'])}</p>",
        f"<p><b>Out of scope:</b> {esc(card['out_of_scope_use'])}</p>",
        "<h3>Training data</h3>",
        _table(card["training_data"], [("name", "dataset"), ("split", "split"), ("documents", "documents"),
                                       ("tokens", "tokens"), ("license", "license"), ("fingerprint", "fingerprint")]),
        "<h3>Metrics</h3>", kv(card["metrics"]),
        "<h3>Ethical considerations</h3>", f"<p>{esc(card['ethical_considerations'])}</p>",
        "<h3>Caveats and recommendations</h3>", f"<p>{esc(card['caveats'])}</p>",
    ]


def _charts(s: dict[str, Any]) -> list[str]:
    return ["<h2>Training curves</h2>",
            svg_chart("Loss", [("train loss", s["loss"], "#2f6fde"), ("validation loss", s["val_loss"], "#d9480f")],
                      "loss")
            + svg_chart("Throughput", [("tokens/s", s["tokens_per_s"], "#2b8a3e")], "tokens per second")]


def _energy_section(e: Any) -> list[str]:
    """The energy the training steps used (summary.json["energy"], steward.train.energy): measured or
    estimated, with what was read or the estimate's figure and its source, per token and as CO2e."""
    if not isinstance(e, dict):
        return ["<h2>Energy</h2>", "<p class='muted'>not metered (energy.enabled false, or a run from before "
                "the meter)</p>"]
    if e.get("measured"):
        kind = "<p class='ok'>Measured by hardware counters.</p>"
    elif e.get("source") == "estimate":
        kind = "<p class='warn'>Estimated, not measured: see the basis below for the figure and its source.</p>"
    else:
        kind = ("<p class='warn'>Partly estimated: the parts labelled estimate in the source are estimates; the "
                "basis below names the figure and its source.</p>")
    return ["<h2>Energy</h2>", kind, kv({
        "energy (J)": _num(e.get("energy_j")), "energy per token (J)": _num(e.get("j_per_token")),
        "CO2e (g)": _num(e.get("co2e_g")), "source": e.get("source"), "measured": bool(e.get("measured")),
        "basis": e.get("basis"), "grid intensity (g CO2e/kWh)": _num(e.get("grid_g_per_kwh")),
        "grid intensity source": e.get("grid_source"), "window": e.get("window")})]


def _datasheets_section(datasheets: list[dict[str, Any]]) -> list[str]:
    sheets = []
    for d in datasheets:
        sheet = {k: v for k, v in d["datasheet"].items() if k != "references"}
        refs = d["datasheet"].get("references", [])
        sheets.append(f"<h3>{esc(d['name'])}</h3>" + kv({**sheet, "licenses (SPDX)": d.get("license"),
                                                        "datasheet from": ", ".join(d.get("origin", []))})
                      + (("<p class='muted'>References: " + "; ".join(esc(x) for x in refs) + "</p>") if refs else "")
                      + _table(d["splits"], [("split", "split"), ("documents", "documents"), ("tokens", "tokens"),
                                             ("fingerprint", "fingerprint")]))
    return ["<h2>Datasheets</h2>", "".join(sheets) or "<p class='muted'>no datasets recorded</p>"]


def _evidence_sections(r: dict[str, Any]) -> list[str]:
    return [
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
    ]


def _decisions_sections(r: dict[str, Any]) -> list[str]:
    """Policy decisions, approvals and releases, and the risk register."""
    return [
        "<h2>Policy decisions</h2>",
        (kv({k: v for k, v in (r.get("policy") or {}).items() if k != "rules"}) if r.get("policy") else
         "<p class='muted'>no policy (governance.policy = none)</p>"),
        _table(r["decisions"], [("seq", "entry"), ("stage", "stage"), ("rule", "rule"), ("subject", "subject"),
                                ("effect", "decision"), ("message", "message"), ("error", "error")]),
        "<h2>Approvals and releases</h2>",
        _table([{**a, "event": "approved"} for a in r["approvals"]] + [{**a, "event": "released"} for a in r["releases"]],
               [("seq", "entry"), ("event", "event"), ("time", "time"), ("actor", "actor"), ("key_id", "signed with key"),
                ("note", "note")]),
        "<h2>Keys that acted</h2>",
        _table(r.get("keys") or [], [("role", "as"), ("actor", "name"), ("key_id", "key id (SHA-256 of the public key)"),
                                     ("registered_for", "registered for"), ("registered_by", "registered by"),
                                     ("verified", "signature verifies"),
                                     ("problem", "problem")]),
        "<h2>Risk register (ISO/IEC 23894)</h2>",
        _table(r["risks"], [("id", "id"), ("title", "risk"), ("source", "source"), ("objective", "objective"),
                            ("likelihood", "L"), ("impact", "I"), ("level", "level"), ("rating", "rating"),
                            ("treatment", "treatment"), ("owner", "owner"), ("status", "status"),
                            ("evidence", "evidence")]),
    ]


def _lineage_section(r: dict[str, Any]) -> list[str]:
    """Config and code lineage, the checkpoints, and whether provenance.json verified."""
    lineage, prov = r["lineage"], r.get("provenance")
    prov_html = ("<p class='muted'>no provenance.json (no checkpoint was saved)</p>" if not prov else
                 f"<p class='{'ok' if prov['ok'] else 'bad'}'>provenance.json: "
                 f"{'verified, ' + str(prov['subjects_checked']) + ' files match their attested digests' if prov['ok'] else esc(prov['error'])}</p>")
    return [
        "<h2>Lineage</h2>", kv({"config SHA-256": lineage.get("config_sha256"),
                                **{f"code {k}": v for k, v in (lineage.get("code") or {}).items()},
                                **{f"env {k}": v for k, v in (lineage.get("environment") or {}).items()}}),
        _table(lineage.get("checkpoints", []), [("step", "step"), ("path", "checkpoint"),
                                                ("manifest_sha256", "manifest SHA-256"), ("num_files", "files")]),
        prov_html,
    ]


def _audit_section(audit: dict[str, Any]) -> list[str]:
    return [
        "<h2>Audit verification</h2>",
        kv({k: audit.get(k) for k in ("ok", "store", "log_id", "entries", "root", "heads_checked",
                                      "published_heads_checked", "consistency_checks", "key_trust", "error")}),
        ("<p class='muted'>" + "<br>".join(esc(w) for w in audit.get("warnings", [])) + "</p>")
        if audit.get("warnings") else "",
    ]


def render_html(r: dict[str, Any]) -> str:
    """The report as one HTML page: model card, charts, fairness and explanations (when recorded),
    energy, datasheets, the evidence tables, decisions, risks, lineage and the audit verification."""
    card = r["model_card"]
    md = card["model_details"]
    return page(f"Steward report: {esc(md.get('name'))} ({esc(r['run']['id'])})", [
        *_header(r),
        *_model_card_section(card),
        *_charts(r["series"]),
        *_fairness_section(card["metrics"].get("fairness")),
        *_fairness_domains_section(r.get("fairness_domains")),
        *_explanations_section(r.get("explanations")),
        *_energy_section(r.get("energy")),
        *_cross_domain_section(r.get("cross_domain")),
        *_drift_section(r.get("drift")),
        *_datasheets_section(r["datasheets"]),
        *_evidence_sections(r),
        *_decisions_sections(r),
        *_lineage_section(r),
        *_audit_section(r["audit"]),
    ])
