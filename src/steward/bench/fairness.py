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
from dataclasses import dataclass
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
    p.add_argument("--data", default="madlibs", help="'madlibs' or a training set in the identities layout")
    p.add_argument("--eval-data", default="", help="evaluation set in the identities layout (fairness.eval_data)")
    p.add_argument("--eval-from-train", action="store_true",
                   help="with --data FILE and no --eval-data: evaluate on fairness.eval_fraction of FILE, whose rows "
                   "carry FILE's own association (the gaps then measure it, not what holds on balanced data)")
    p.add_argument("--sources", default="",
                   help="NAME[,NAME] of the test bed (steward.fairness.testbed; 'all', 'held_out', 'seen' or 'tuning' for "
                   "those groups): per source, train on its biased split, evaluate on its balanced test split, and "
                   "train its unbiased twin for the removable gap")
    p.add_argument("--source-size", type=int, default=6000, help="training rows per test-bed source and split")
    p.add_argument("--source-eval-size", type=int, default=3000, help="balanced test rows per test-bed source")
    p.add_argument("--adversary", default="equalized_odds",
                   choices=("representation", "demographic_parity", "equalized_odds", "equal_opportunity"))
    p.add_argument("--adversary-input", default="standardized_logit", choices=("standardized_logit", "probability"),
                   help="fairness.adversary_input: the batch-standardised logit, or Zhang et al.'s probability")
    p.add_argument("--alpha", type=float, default=None,
                   help="fairness.alpha (default: the config's); with fairness.control, the controller's starting value")
    p.add_argument("--adversary-set", action="append", default=[], metavar="KEY=VALUE",
                   help="a further fairness.KEY of the adversary run only (repeatable), e.g. control=off, "
                   "loss_weights=reweigh, control_target=0.02")
    p.add_argument("--baselines", default="reweigh,group_dro",
                   help="fairness.loss_weights methods also trained per seed, on the same data ('' for none): "
                   "reweigh (Kamiran and Calders), group_dro (Sagawa et al.)")
    p.add_argument("--group-dro-step", type=float, default=0.01, help="fairness.group_dro_step of the group_dro run")
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
    if a.sources and (a.data != "madlibs" or a.eval_data or a.eval_from_train):
        p.error("--sources: the test bed brings its own splits; drop --data, --eval-data and --eval-from-train")
    if a.eval_from_train and (a.data == "madlibs" or a.eval_data):
        p.error("--eval-from-train: only with --data FILE and no --eval-data")
    if a.data != "madlibs" and not a.eval_data and not a.eval_from_train:
        p.error("--data: give --eval-data TEST (a held-out set), or --eval-from-train to evaluate on a slice of "
                "the training file, which carries its bias")
    if a.source_size < 2 or a.source_eval_size < 2:
        p.error("--source-size and --source-eval-size: must be >= 2")
    a.source_names = _source_names(p, a.sources)
    if a.alpha is None:
        from steward.config import Fairness

        a.alpha = Fairness.alpha
    a.adversary_overrides = _adversary_overrides(p, a.adversary_set)
    a.baseline_methods = [m for m in a.baselines.split(",") if m]
    if any(m not in ("reweigh", "group_dro") for m in a.baseline_methods):
        p.error(f"--baselines: {a.baselines!r}; give reweigh, group_dro or both, comma-separated, or ''")
    if a.tokenizer not in ("bpe", "byte") and not Path(a.tokenizer).is_file():
        p.error(f"--tokenizer: {a.tokenizer!r} is neither 'bpe', 'byte' nor a tokenizer JSON file")
    if a.vocab_size is not None and a.tokenizer != "bpe":
        p.error(f"--vocab-size: only for --tokenizer bpe (a {a.tokenizer!r} tokenizer has its own vocabulary)")
    a.vocab_size = 4096 if a.vocab_size is None else a.vocab_size
    if a.vocab_size < MIN_BPE_VOCAB:
        p.error(f"--vocab-size: must be at least {MIN_BPE_VOCAB} (256 bytes + <|endoftext|>), got {a.vocab_size}")
    return a


def _adversary_overrides(p: argparse.ArgumentParser, items: list[str]) -> list[str]:
    """The --adversary-set KEY=VALUE items as config overrides (--fairness.KEY VALUE)."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or key.startswith("fairness."):
            p.error(f"--adversary-set: {item!r}; give KEY=VALUE with KEY a fairness option without the "
                    "'fairness.' prefix, e.g. control=off")
        out += [f"--fairness.{key}", value]
    return out


def _source_names(p: argparse.ArgumentParser, spec: str) -> list[str]:
    from steward.fairness.metrics import FairnessError
    from steward.fairness.testbed import (
        SEEN_SOURCES,
        SOURCES,
        TUNING_SOURCES,
        check_sources,
        held_out_sources,
    )

    groups = {"all": list(SOURCES), "held_out": held_out_sources(), "tuning": list(TUNING_SOURCES),
              "seen": list(SEEN_SOURCES)}
    names = [n for part in spec.split(",") if part for n in groups.get(part, [part])]
    empty = [part for part in spec.split(",") if part in groups and not groups[part]]
    if empty and not names:
        p.error(f"--sources: no source has the role {empty[0]!r} under the current defaults "
                "(steward.fairness.testbed.source_role); name sources, or use 'all'")
    try:
        return check_sources(list(dict.fromkeys(names))) if spec else []
    except FairnessError as e:
        p.error(str(e))


def _overrides(a: argparse.Namespace, seed: int, out: Path, adversary: str, bias: float,
               data: tuple[str, str] | None = None, loss_weights: str = "auto") -> list[str]:
    """The config of one run; `data` = (fairness.data, fairness.eval_data), default --data and --eval-data."""
    train, evald = data or (a.data, a.eval_data)
    return [
        "--train.task", "classify", "--model.flavor", a.flavor, "--train.steps", str(a.steps),
        "--train.batch_size", "32", "--train.lr", str(a.lr), "--train.warmup_steps", "10", "--train.val_every", "0",
        "--train.seed", str(seed), "--train.device", a.device, "--train.threads", str(a.threads),
        "--governance.enabled", "false", "--checkpoint.enabled", "false", "--job.out", str(out),
        "--job.overwrite", "true", "--fairness.enabled", "true", "--fairness.eval_every", "0",
        "--fairness.bootstrap", str(a.bootstrap), "--fairness.data", train, "--fairness.eval_data", evald,
        "--fairness.adversary", adversary, "--fairness.alpha", str(a.alpha),
        "--fairness.adversary_input", a.adversary_input,
        "--fairness.loss_weights", loss_weights, "--fairness.group_dro_step", str(a.group_dro_step),
        "--fairness.madlibs_bias", str(bias), "--fairness.madlibs_eval_size", str(a.madlibs_eval_size),
    ]


def _tokenizer(a: argparse.Namespace, overrides: list[str], split: tuple, tmp: Path,
               cache: dict[tuple, str]) -> list[str]:
    """The data.tokenizer override for a run: with --tokenizer bpe, a byte-level BPE trained on the
    run's own training split (never its evaluation split), once per distinct split, which `split`
    names: (seed, injected bias, training data)."""
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


def _subgroup_gaps(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per subgroup (the `subgroups` rows of a fairness report), the mean of |subgroup, BPSN, BNSP AUC -
    overall| (what the family figure averages): where a family's remaining gap sits."""
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
    # one categorical sensitive feature per example: its subgroup, its subgroups joined by '+' when it
    # mentions several (the test bed's threads source mentions two or three in every row), or 'none'
    names = tr.data.subgroup_names()
    mat = tr.data.identity_matrix()
    sens = np.array(["+".join(n for n, m in zip(names, r) if m) or "none" for r in mat])
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


@dataclass(frozen=True)
class _Variant:
    """One training run of a seed: its name in the results, its adversary, and its data."""

    name: str
    adversary: str
    bias: float
    data: tuple[str, str] | None = None
    """(fairness.data, fairness.eval_data); None: --data and --eval-data."""
    loss_weights: str = "auto"
    """fairness.loss_weights: a --baselines method, or the default ('auto': reweighing with an adversary,
    none without; `--adversary-set loss_weights=none` gives the adversary run v3's unweighted loss)."""


def _cases(a: argparse.Namespace, seed: int, tmp: Path) -> dict[str, list[_Variant]]:
    """This seed's runs per case: the --data set (case ''), or each test-bed source, whose biased
    training split, unbiased twin and balanced test split are written as CSV files (the identities
    layout, read as any user's file is)."""
    if not a.source_names:
        v = [_Variant("baseline", "none", a.madlibs_bias), _Variant("adversary", a.adversary, a.madlibs_bias)]
        v += [_Variant(m, "none", a.madlibs_bias, None, m) for m in a.baseline_methods]
        return {"": v + ([_Variant("unbiased", "none", 0.0)] if a.unbiased_reference else [])}
    from steward.fairness.testbed import SPLITS, generate_source, write_identities

    cases = {}
    for name in a.source_names:
        files = {split: str(write_identities(
            generate_source(name, a.source_eval_size if split == "test" else a.source_size, seed=seed, split=split),
            tmp / f"{name}-{seed}-{split}.csv")) for split in SPLITS}
        biased, twin = (files["train"], files["test"]), (files["twin"], files["test"])
        cases[name] = [_Variant("baseline", "none", a.madlibs_bias, biased),
                       _Variant("adversary", a.adversary, a.madlibs_bias, biased),
                       *[_Variant(m, "none", a.madlibs_bias, biased, m) for m in a.baseline_methods],
                       _Variant("unbiased", "none", a.madlibs_bias, twin)]
    return cases


def _carrying_gap(rows: list[dict[str, Any]], carrying: tuple[str, ...]) -> float:
    """Mean |BPSN gap| and |BNSP gap| over the subgroups that carry a source's injected association."""
    gaps = [abs(r[k]) for r in rows if r["subgroup"] in carrying for k in ("bpsn_auc_gap", "bnsp_auc_gap")
            if not math.isnan(r[k])]
    return float(np.mean(gaps)) if gaps else math.nan


def _train(a: argparse.Namespace, seed: int, case: str, v: _Variant, tmp: Path,
           tokenizers: dict[tuple, str]) -> tuple[dict[str, Any], Any]:
    """Train one variant; its figures and the trainer."""
    from steward.classify.trainer import ClassifyTrainer
    from steward.config import load_config
    from steward.fairness.testbed import SOURCES

    print(f"bench fairness: {case + ' ' if case else ''}seed {seed} {v.name}", file=sys.stderr, flush=True)
    run_dir = tmp / f"{case or 'data'}-{v.name}-{seed}"
    ov = _overrides(a, seed, run_dir, v.adversary, v.bias, v.data, v.loss_weights)
    ov += a.adversary_overrides if v.name == "adversary" else []
    key = (seed, v.bias, (v.data or (a.data,))[0])
    trainer = ClassifyTrainer(load_config(None, ov + _tokenizer(a, ov, key, tmp, tokenizers)))
    summary = trainer.run()
    f = summary["fairness"]
    ci = f.get("ci", {})
    rows = json.loads((run_dir / "fairness" / "report.json").read_text())["subgroups"]
    record = {
        "overall_auc": f["overall_auc"], "gaps": _gaps(f),
        "gap_ci_halfwidth": {k: (ci[f"mean_abs_gap/{k}"][1] - ci[f"mean_abs_gap/{k}"][0]) / 2
                             for k in FAMILIES if f"mean_abs_gap/{k}" in ci},
        "train_time_s": summary["train_time_s"],
        "subgroup_gaps": _subgroup_gaps(rows),
    }
    if case:
        record["carrying_gap"] = _carrying_gap(rows, SOURCES[case].carrying)
    if "alpha_control" in trainer.figures:  # the controller's decisions (fairness.control)
        record["control_decisions"] = trainer.figures["alpha_control"]["decisions"]
        record["control_selected"] = summary["alpha_control"]["selected"]
    return record, trainer


def _summarise(a: argparse.Namespace, runs: dict[str, list[dict[str, Any]]], variants: list[str]) -> dict[str, Any]:
    """Means (and across-seed sd, bootstrap half-width) per variant and family, the reductions, the AUC
    cost and the pass flags of one case."""
    result: dict[str, Any] = {}
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
        if "control_decisions" in rows[0]:
            result[f"{name}/control_decisions"] = [r["control_decisions"] for r in rows]
            result[f"{name}/control_selected"] = [r["control_selected"] for r in rows]
        if "carrying_gap" in rows[0]:
            result[f"{name}/carrying_gap"], result[f"{name}/carrying_gap_sd"] = _mean_sd(
                [r["carrying_gap"] for r in rows])
    for name in variants:
        subs = runs[name][0]["subgroup_gaps"]
        result[f"{name}/subgroup_gaps"] = {k: _mean_sd([r["subgroup_gaps"][k] for r in runs[name]])[0] for k in subs}
    ok = True
    for fam in FAMILIES:
        red = 1 - result[f"adversary/gap_{fam}"] / result[f"baseline/gap_{fam}"]
        result[f"reduction_{fam}"] = red
        ok &= red >= 0.6
        if "unbiased" in variants:
            result[f"removable_reduction_{fam}"] = _removed(result, f"gap_{fam}")
        for frozen in ("frozen_fairlearn", "frozen_steward"):
            result[f"{frozen}/reduction_{fam}"] = 1 - result[f"{frozen}/gap_{fam}"] / result[f"frozen_no_adversary/gap_{fam}"]
    if "unbiased/carrying_gap" in result:
        result["carrying_removable_reduction"] = _removed(result, "carrying_gap")
    result["auc_cost_points"] = 100 * (base_auc - result["adversary/overall_auc"])
    for m in a.baseline_methods:  # the loss-weighting baselines, the same figures under their own name
        for fam in FAMILIES:
            result[f"{m}/reduction_{fam}"] = 1 - result[f"{m}/gap_{fam}"] / result[f"baseline/gap_{fam}"]
            if "unbiased" in variants:
                result[f"{m}/removable_reduction_{fam}"] = _removed(result, f"gap_{fam}", m)
        if "unbiased/carrying_gap" in result:
            result[f"{m}/carrying_removable_reduction"] = _removed(result, "carrying_gap", m)
        result[f"{m}/auc_cost_points"] = 100 * (base_auc - result[f"{m}/overall_auc"])
    result["time_ratio_adversary_vs_baseline"] = (
        float(np.mean([r["train_time_s"] for r in runs["adversary"]])) / float(np.mean([r["train_time_s"] for r in runs["baseline"]])))
    result["pass_gap_reduction_60pct"] = bool(ok)
    result["pass_auc_cost_2pts"] = bool(result["auc_cost_points"] <= 2.0)
    if "unbiased" in variants:
        result.update(done_when(result))
    return result


def done_when(result: dict[str, Any]) -> dict[str, Any]:
    """Issue 17's condition on one summarised case: per family the share of the removable gap the adversary
    removed (`removable_reduction_<family>`); where that removable gap (baseline - unbiased) is at most the
    adversary gap's bootstrap half-width, or negative, the carrying subgroups' share instead
    (`carrying_removable_reduction`), or none ('within') when the case has no carrying subgroups. Met when
    every family's share is at least 60% (or within) and the AUC cost at most 2 points. Returns
    `done_when/<family>` = [share or None, 'family' | 'carrying' | 'within'] and `done_when/met`."""
    out: dict[str, Any] = {}
    met = result["auc_cost_points"] <= 2.0
    for fam in FAMILIES:
        removable = result[f"baseline/gap_{fam}"] - result[f"unbiased/gap_{fam}"]
        if removable > result.get(f"adversary/gap_{fam}_ci95_halfwidth", 0.0):
            share, used = result[f"removable_reduction_{fam}"], "family"
        elif "carrying_removable_reduction" in result:
            share, used = result["carrying_removable_reduction"], "carrying"
        else:
            share, used = None, "within"
        met &= share is None or share >= 0.6  # NaN: nothing removable, which is not a pass
        out[f"done_when/{fam}"] = [share, used]
    out["done_when/met"] = bool(met)
    return out


def _removed(result: dict[str, Any], figure: str, method: str = "adversary") -> float:
    """(baseline - method) / (baseline - unbiased): the share of the removable gap `method` removed (NaN
    when the unbiased run is no better than the baseline: nothing removable to measure against)."""
    removable = result[f"baseline/{figure}"] - result[f"unbiased/{figure}"]
    return (result[f"baseline/{figure}"] - result[f"{method}/{figure}"]) / removable if removable > 0 else math.nan


@register("fairness", "adversarial debiasing vs none (3 seeds) and vs Fairlearn on frozen features")
def bench_fairness(argv: list[str]) -> dict[str, Any]:
    from steward.fairness.testbed import TUNING_SOURCES, source_role

    a = _parse(argv)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    variants: dict[str, list[str]] = {}
    tokenizers: dict[tuple, str] = {}
    with tempfile.TemporaryDirectory(prefix="steward-bench-fairness-") as tmp:
        for seed in range(a.seeds):
            for case, case_variants in _cases(a, seed, Path(tmp)).items():
                variants[case] = [v.name for v in case_variants]
                for v in case_variants:
                    record, trainer = _train(a, seed, case, v, Path(tmp), tokenizers)
                    runs.setdefault(case, {}).setdefault(v.name, []).append(record)
                    if v.name == "baseline":
                        print("bench fairness: frozen-feature comparison", file=sys.stderr, flush=True)
                        for k, fr in _frozen(trainer, a, seed).items():
                            runs[case].setdefault(k, []).append(fr)
    result: dict[str, Any] = {"seeds": a.seeds, "steps": a.steps, "data": "testbed" if a.source_names else a.data,
                              "adversary": a.adversary, "adversary_input": a.adversary_input, "tokenizer": a.tokenizer,
                              "alpha": a.alpha, "adversary_set": a.adversary_set,
                              "frozen_constraint": a.frozen_constraint, "device": a.device}
    if a.eval_data or a.eval_from_train:
        result["eval_data"] = a.eval_data or f"fairness.eval_fraction of {a.data}"
    for case, case_runs in runs.items():
        figures = _summarise(a, case_runs, variants[case])
        if case:
            figures = {"role": source_role(case), **figures}
        result.update({f"{case}/{k}" if case else k: v for k, v in figures.items()})
    if a.source_names:
        result["sources"] = ",".join(a.source_names)
        result["tuning_sources"] = ",".join(TUNING_SOURCES)
    return result
