"""`steward bench fairness`: classification fine-tuning with and without adversarial debiasing.

For each seed: train the decoder + head on fairness.data (default: madlibs with an injected
identity/label association) without an adversary (the baseline, in this same invocation) and with
one; evaluate both on the held-out identity set. Both read the text through the same tokenizer:
by default a byte-level BPE trained on the run's training split (`--tokenizer bpe`), as a
language model brings its own subword vocabulary to a fine-tune. Then, on the baseline's frozen
pooled features, fit Fairlearn's AdversarialFairnessClassifier, our AdversarialDebiaser with the
same constraint, and the same predictor without an adversary. Reported per family (gender, ethnicity, religion): the mean
absolute AUC gap of each, its reduction against the baseline, and the cost in overall AUC.

Resolution: the gaps come with the across-seed standard deviation and the bootstrap 95% interval
half-width of the evaluation set (resamples of examples), so a reader can tell a real reduction from
noise.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from steward.bench import register

FAMILIES = ("gender", "ethnicity", "religion")


def _parse(argv: list[str]) -> argparse.Namespace:
    from steward.data.tokenizer import MIN_BPE_VOCAB

    p = argparse.ArgumentParser(prog="steward bench fairness", add_help=True)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--flavor", default="debug")
    p.add_argument("--data", default="madlibs", help="'madlibs' or a dataset in the identities layout")
    p.add_argument("--adversary", default="equalized_odds",
                   choices=("representation", "demographic_parity", "equalized_odds"))
    p.add_argument("--adversary-input", default="standardized_logit", choices=("standardized_logit", "probability"),
                   help="fairness.adversary_input: the batch-standardised logit, or Zhang et al.'s probability")
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--tokenizer", default="bpe",
                   help="'bpe': a byte-level BPE trained on each run's training split (data.tokenizer); 'byte'; or "
                   "a tokenizer JSON file")
    p.add_argument("--vocab-size", type=int, default=None, help="vocabulary of --tokenizer bpe (at most; default 4096)")
    p.add_argument("--lr", type=float, default=1e-3, help="predictor learning rate (train.lr), same for both runs")
    p.add_argument("--frozen-constraint", default="equalized_odds", choices=("demographic_parity", "equalized_odds"))
    p.add_argument("--frozen-epochs", type=int, default=5)
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    p.add_argument("--madlibs-bias", type=float, default=0.8)
    p.add_argument("--madlibs-eval-size", type=int, default=12000,
                   help="evaluation sentences (fairness.madlibs_eval_size): with 12000 an identity-blind model's "
                   "gaps are 0.001-0.01 per family, against 0.006-0.023 with 3000")
    p.add_argument("--unbiased-reference", action="store_true",
                   help="madlibs only: also train each seed on a split with no injected association (bias 0, no "
                   "adversary). Its gaps are what the model's own handling of the identity terms leaves, a floor "
                   "no debiasing of the injected association is expected to go below; reported as unbiased/gap_* "
                   "and removable_reduction_* = (baseline - adversary) / (baseline - unbiased)")
    a = p.parse_args(argv)
    if a.unbiased_reference and a.data != "madlibs":
        p.error("--unbiased-reference: needs --data madlibs (a dataset's own association cannot be switched off)")
    if a.tokenizer not in ("bpe", "byte") and not Path(a.tokenizer).is_file():
        p.error(f"--tokenizer: {a.tokenizer!r} is neither 'bpe', 'byte' nor a tokenizer JSON file")
    if a.vocab_size is not None and a.tokenizer != "bpe":
        p.error(f"--vocab-size: only for --tokenizer bpe (a {a.tokenizer!r} tokenizer has its own vocabulary)")
    a.vocab_size = 4096 if a.vocab_size is None else a.vocab_size
    if a.vocab_size < MIN_BPE_VOCAB:
        p.error(f"--vocab-size: must be at least {MIN_BPE_VOCAB} (256 bytes + <|endoftext|>), got {a.vocab_size}")
    return a


def _overrides(a: argparse.Namespace, seed: int, out: Path, adversary: str, bias: float) -> list[str]:
    return [
        "--train.task", "classify", "--model.flavor", a.flavor, "--train.steps", str(a.steps),
        "--train.batch_size", "32", "--train.lr", str(a.lr), "--train.warmup_steps", "10", "--train.val_every", "0",
        "--train.seed", str(seed), "--train.device", a.device, "--train.threads", str(a.threads),
        "--governance.enabled", "false", "--checkpoint.enabled", "false", "--job.out", str(out),
        "--job.overwrite", "true", "--fairness.enabled", "true", "--fairness.eval_every", "0",
        "--fairness.bootstrap", str(a.bootstrap), "--fairness.data", a.data,
        "--fairness.adversary", adversary, "--fairness.alpha", str(a.alpha),
        "--fairness.adversary_input", a.adversary_input,
        "--fairness.madlibs_bias", str(bias), "--fairness.madlibs_eval_size", str(a.madlibs_eval_size),
    ]


def _tokenizer(a: argparse.Namespace, overrides: list[str], split: tuple[int, float], tmp: Path,
               cache: dict[tuple[int, float], str]) -> list[str]:
    """The data.tokenizer override for a run: with --tokenizer bpe, a byte-level BPE trained on the
    run's own training split (never its evaluation split), once per distinct split. Within one bench
    the data is fixed, so `split` = (seed, injected bias) names it."""
    if a.tokenizer == "byte":
        return []
    if a.tokenizer != "bpe":
        return ["--data.tokenizer", a.tokenizer]
    from steward.classify.data import train_split_tokenizer
    from steward.config import load_config

    if split not in cache:
        out = tmp / f"tokenizer-{len(cache)}.json"
        cache[split] = str(train_split_tokenizer(load_config(None, overrides), a.vocab_size, out)[0])
    return ["--data.tokenizer", cache[split]]


def _gaps(report: dict[str, Any]) -> dict[str, float]:
    return {f: report["mean_abs_gap"].get(f, float("nan")) for f in FAMILIES}


def _subgroup_gaps(run_dir: Path) -> dict[str, float]:
    """Per subgroup, the mean of |subgroup, BPSN, BNSP AUC - overall| (what the family figure averages):
    where a family's remaining gap sits."""
    rows = json.loads((run_dir / "fairness" / "report.json").read_text())["subgroups"]
    out = {}
    for r in rows:
        gaps = [abs(r[k]) for k in ("subgroup_auc_gap", "bpsn_auc_gap", "bnsp_auc_gap") if not math.isnan(r[k])]
        out[f"{r['family']}/{r['subgroup']}"] = float(np.mean(gaps)) if gaps else math.nan
    return out


def _frozen(trainer, a: argparse.Namespace, seed: int) -> dict[str, dict[str, Any]]:
    """Fairlearn's AdversarialFairnessClassifier vs ours on the trained baseline's frozen features."""
    import torch
    from fairlearn.adversarial import AdversarialFairnessClassifier

    from steward.fairness.estimator import AdversarialDebiaser
    from steward.fairness.metrics import fairness_report

    def features(enc) -> np.ndarray:
        model = trainer._inner()
        model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(enc), 256):
                b = {k: v.to(trainer.dist.device) for k, v in enc.rows(np.arange(i, min(i + 256, len(enc)))).items()}
                out.append(model.features(b["tokens"], b["mask"]).float().cpu().numpy())
        return np.concatenate(out)

    tr, ev = trainer.data.train_enc, trainer.data.eval_enc
    xtr, xev = features(tr), features(ev)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xev = (xtr - mu) / sd, (xev - mu) / sd
    ytr = tr.data.labels.astype(int)
    # one categorical sensitive feature per example: its subgroup ('' for none or several)
    names = tr.data.subgroup_names()
    mat = tr.data.identity_matrix()
    sens = np.array([names[int(r.argmax())] if r.sum() == 1 else "none" for r in mat])
    out: dict[str, dict[str, Any]] = {}
    ed = ev.data

    def score(prob: np.ndarray) -> dict[str, Any]:
        r = fairness_report(ed.labels, prob, ed.groups, ed.families)
        return {"overall_auc": r["overall_auc"], "gaps": _gaps(r)}

    common = {"epochs": a.frozen_epochs, "batch_size": 64, "random_state": seed}
    plain = AdversarialDebiaser(constraints=a.frozen_constraint, alpha=0.0, hidden=32, learning_rate=1e-3, **common)
    out["frozen_no_adversary"] = score(plain.fit(xtr, ytr, sensitive_features=sens).predict_proba(xev)[:, 1])
    ours = AdversarialDebiaser(constraints=a.frozen_constraint, alpha=a.alpha, hidden=32, learning_rate=1e-3,
                               adversary_learning_rate=1e-2, adversary_input=a.adversary_input, **common)
    out["frozen_steward"] = score(ours.fit(xtr, ytr, sensitive_features=sens).predict_proba(xev)[:, 1])
    torch.manual_seed(seed)
    afc = AdversarialFairnessClassifier(
        backend="torch", predictor_model=[32, "leaky_relu"], adversary_model=[3, "leaky_relu"],
        constraints=a.frozen_constraint, learning_rate=1e-3, alpha=a.alpha, **common,
    )
    afc.fit(xtr, ytr, sensitive_features=sens)
    # AUC needs scores; fairlearn exposes its predictor's soft output only as _raw_predict (0.15)
    out["frozen_fairlearn"] = score(np.asarray(afc._raw_predict(xev), dtype=float).reshape(-1))
    return out


def _mean_sd(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return float(np.nanmean(v)), float(np.nanstd(v))


@register("fairness", "adversarial debiasing vs none (3 seeds) and vs Fairlearn on frozen features")
def bench_fairness(argv: list[str]) -> dict[str, Any]:
    from steward.classify.trainer import ClassifyTrainer
    from steward.config import load_config

    a = _parse(argv)
    runs: dict[str, list[dict[str, Any]]] = {}
    tokenizers: dict[tuple[int, float], str] = {}
    with tempfile.TemporaryDirectory(prefix="steward-bench-fairness-") as tmp:
        variants = [("baseline", "none", a.madlibs_bias), ("adversary", a.adversary, a.madlibs_bias)]
        if a.unbiased_reference:
            variants.append(("unbiased", "none", 0.0))
        for seed in range(a.seeds):
            for name, adversary, bias in variants:
                print(f"bench fairness: seed {seed} {name}", file=sys.stderr, flush=True)
                run_dir = Path(tmp) / f"{name}-{seed}"
                ov = _overrides(a, seed, run_dir, adversary, bias)
                cfg = load_config(None, ov + _tokenizer(a, ov, (seed, bias), Path(tmp), tokenizers))
                trainer = ClassifyTrainer(cfg)
                summary = trainer.run()
                f = summary["fairness"]
                ci = f.get("ci", {})
                runs.setdefault(name, []).append({
                    "overall_auc": f["overall_auc"], "gaps": _gaps(f),
                    "gap_ci_halfwidth": {k: (ci[f"mean_abs_gap/{k}"][1] - ci[f"mean_abs_gap/{k}"][0]) / 2
                                         for k in FAMILIES if f"mean_abs_gap/{k}" in ci},
                    "train_time_s": summary["train_time_s"],
                    "subgroup_gaps": _subgroup_gaps(run_dir),
                })
                if name == "baseline":
                    print(f"bench fairness: seed {seed} frozen-feature comparison", file=sys.stderr, flush=True)
                    for k, v in _frozen(trainer, a, seed).items():
                        runs.setdefault(k, []).append(v)
    result: dict[str, Any] = {"seeds": a.seeds, "steps": a.steps, "data": a.data, "adversary": a.adversary,
                              "adversary_input": a.adversary_input, "tokenizer": a.tokenizer, "alpha": a.alpha,
                              "frozen_constraint": a.frozen_constraint, "device": a.device}
    base_auc, _ = _mean_sd([r["overall_auc"] for r in runs["baseline"]])
    for name, rows in runs.items():
        auc, auc_sd = _mean_sd([r["overall_auc"] for r in rows])
        result[f"{name}/overall_auc"] = auc
        result[f"{name}/overall_auc_sd"] = auc_sd
        for fam in FAMILIES:
            g, g_sd = _mean_sd([r["gaps"][fam] for r in rows])
            result[f"{name}/gap_{fam}"] = g
            result[f"{name}/gap_{fam}_sd"] = g_sd
            if "gap_ci_halfwidth" in rows[0] and fam in rows[0]["gap_ci_halfwidth"]:
                result[f"{name}/gap_{fam}_ci95_halfwidth"] = _mean_sd([r["gap_ci_halfwidth"][fam] for r in rows])[0]
    for name in [v[0] for v in variants]:
        subs = runs[name][0]["subgroup_gaps"]
        result[f"{name}/subgroup_gaps"] = {k: _mean_sd([r["subgroup_gaps"][k] for r in runs[name]])[0] for k in subs}
    ok = True
    for fam in FAMILIES:
        red = 1 - result[f"adversary/gap_{fam}"] / result[f"baseline/gap_{fam}"]
        result[f"reduction_{fam}"] = red
        ok &= red >= 0.6
        if a.unbiased_reference:
            removable = result[f"baseline/gap_{fam}"] - result[f"unbiased/gap_{fam}"]
            result[f"removable_reduction_{fam}"] = (
                (result[f"baseline/gap_{fam}"] - result[f"adversary/gap_{fam}"]) / removable if removable > 0 else math.nan)
        for frozen in ("frozen_fairlearn", "frozen_steward"):
            result[f"{frozen}/reduction_{fam}"] = 1 - result[f"{frozen}/gap_{fam}"] / result[f"frozen_no_adversary/gap_{fam}"]
    result["auc_cost_points"] = 100 * (base_auc - result["adversary/overall_auc"])
    result["time_ratio_adversary_vs_baseline"] = (
        float(np.mean([r["train_time_s"] for r in runs["adversary"]])) / float(np.mean([r["train_time_s"] for r in runs["baseline"]])))
    result["pass_gap_reduction_60pct"] = bool(ok)
    result["pass_auc_cost_2pts"] = bool(result["auc_cost_points"] <= 2.0)
    return result
