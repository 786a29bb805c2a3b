"""Evaluate a finished train.task = classify run on an identity set: tables and a chart of the gaps
per family and subgroup, optionally against another run ("before", e.g. the run without the
adversary). What `steward fairness eval` calls."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from steward.classify.data import encode_texts, identity_columns
from steward.fairness.data import IdentityData, load_fairness_data
from steward.fairness.metrics import BIAS_AUCS, fairness_report
from steward.fairness.predictions import write_predictions
from steward.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from steward.models.gpt import upcast


@torch.no_grad()
def score(model, tokenizer, texts: list[str], max_len: int, batch_size: int = 256) -> np.ndarray:
    out = []
    for i in range(0, len(texts), batch_size):
        tokens, mask = encode_texts(tokenizer, texts[i: i + batch_size], max_len)
        out.append(torch.sigmoid(upcast(model(tokens, mask)[1]).squeeze(-1)).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def evaluation_data(spec: str, cfg, size: int) -> IdentityData:
    """'madlibs' (the balanced evaluation split for the run's seed) or a path in the identities layout."""
    return load_fairness_data(spec, split="eval" if spec == "madlibs" else "validation", n=size,
                              seed=cfg.train.seed, bias=0.0, text_field=cfg.fairness.text_field,
                              target_field=cfg.fairness.target_field, identity_columns=identity_columns(cfg))


def evaluate_classifier(cfg, tokenizer, model, data: str, *, size: int = 3000, bootstrap: int = 200,
                        predictions: str | Path | None = None) -> dict[str, Any]:
    """The fairness report of a trained classifier (`steward.jobs.evaluate_run` loads one from a run) on
    the identity set `data` (see `evaluation_data`); with `predictions`, also the per-example scores
    there (steward.fairness.predictions)."""
    d = evaluation_data(data, cfg, size)
    prob = score(model, tokenizer, d.texts, cfg.train.seq_len)
    report = fairness_report(d.labels, prob, d.groups, d.families, bootstrap=bootstrap, seed=cfg.train.seed)
    if predictions is not None:
        write_predictions(predictions, d, prob)
    return report


def _csv(rows: list[dict[str, Any]], cols: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def family_rows(reports: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for label, rep in reports.items():
        for fam, gap in rep["mean_abs_gap"].items():
            ci = rep.get("ci", {}).get(f"mean_abs_gap/{fam}", [math.nan, math.nan])
            rows.append({"run": label, "family": fam, "mean_abs_gap": gap, "ci_low": ci[0], "ci_high": ci[1],
                         "demographic_parity_difference": rep["demographic_parity_difference"][fam],
                         "equalized_odds_difference": rep["equalized_odds_difference"][fam],
                         "overall_auc": rep["overall_auc"]})
    return rows


def write_outputs(out_dir: Path, reports: dict[str, dict[str, Any]]) -> dict[str, str]:
    """report.json, families.csv, subgroups.csv and gaps.png under out_dir; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "report.json", reports)
    fams = family_rows(reports)
    atomic_write_text(out_dir / "families.csv", _csv(fams, list(fams[0]) if fams else ["run"]))
    subs = [{"run": label, **row} for label, rep in reports.items() for row in rep["subgroups"]]
    cols = ["run", "family", "subgroup", "size", "positives", *BIAS_AUCS, *(f"{k}_gap" for k in BIAS_AUCS)]
    atomic_write_text(out_dir / "subgroups.csv", _csv(subs, cols))
    atomic_write_bytes(out_dir / "gaps.png", chart(reports))
    return {k: str(out_dir / k) for k in ("report.json", "families.csv", "subgroups.csv", "gaps.png")}


def chart(reports: dict[str, dict[str, Any]]) -> bytes:
    """PNG: per family the mean |gap| (with its interval), and per subgroup the BPSN and BNSP gaps,
    one bar per run (before/after side by side)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(reports)
    first = reports[labels[0]]
    fams = list(first["mean_abs_gap"])
    subs = [r["subgroup"] for r in first["subgroups"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [1, 3]})
    w = 0.8 / len(labels)
    for i, label in enumerate(labels):
        rep = reports[label]
        vals = [rep["mean_abs_gap"].get(f, math.nan) for f in fams]
        ci = [rep.get("ci", {}).get(f"mean_abs_gap/{f}") for f in fams]
        err = None
        if all(c is not None for c in ci):
            err = np.array([[v - c[0] for v, c in zip(vals, ci)], [c[1] - v for v, c in zip(vals, ci)]])
        ax1.bar(np.arange(len(fams)) + i * w, vals, w, yerr=err, label=label, capsize=3)
        by = {r["subgroup"]: r for r in rep["subgroups"]}
        for j, key in enumerate(("bpsn_auc_gap", "bnsp_auc_gap")):
            ys = [by[s][key] if s in by else math.nan for s in subs]
            ax2.bar(np.arange(len(subs)) + (2 * i + j) * (w / 2), ys, w / 2,
                    label=f"{label} {key.split('_')[0].upper()}", hatch="//" if j else None)
    ax1.set_xticks(np.arange(len(fams)) + 0.4 - w / 2, fams)
    ax1.set_ylabel("mean |bias AUC - overall AUC|")
    ax1.set_title("per family")
    ax1.legend(fontsize=8)
    ax2.axhline(0, color="black", lw=0.8)
    ax2.set_xticks(np.arange(len(subs)) + 0.4 - w / 4, subs, rotation=45, ha="right")
    ax2.set_ylabel("bias AUC - overall AUC")
    ax2.set_title("per subgroup (BPSN, BNSP)")
    ax2.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def domain_reports(cfg, tokenizer, model, sources: list[str], *, size: int, seed: int,
                   bootstrap: int = 0) -> dict[str, dict[str, Any]]:
    """The fairness report of a trained classifier on the balanced `test` split (`size` rows, `seed`) of each
    test-bed source (steward.fairness.testbed: registers such as forum comments, reviews, news)."""
    from steward.fairness.testbed import check_sources, generate_source

    out = {}
    for name in check_sources(sources):
        d = generate_source(name, size, seed=seed, split="test")
        prob = score(model, tokenizer, d.texts, cfg.train.seq_len)
        out[name] = fairness_report(d.labels, prob, d.groups, d.families, bootstrap=bootstrap, seed=cfg.train.seed)
    return out


def domain_spread(reports: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per identity family: the largest and smallest mean |gap| over the domains, and their difference."""
    families = next(iter(reports.values()))["mean_abs_gap"]
    out = {}
    for fam in families:
        gaps = [r["mean_abs_gap"][fam] for r in reports.values()]
        out[fam] = {"max": float(np.nanmax(gaps)), "min": float(np.nanmin(gaps)),
                    "spread": float(np.nanmax(gaps) - np.nanmin(gaps))}
    return out
