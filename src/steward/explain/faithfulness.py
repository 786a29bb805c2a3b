"""Faithfulness: do the explanations name what the model actually uses?

ERASER (DeYoung et al. 2020, section 4): for the top-k% words of a ranking r and the model's predicted
class y, comprehensiveness = p(y|x) - p(y|x without r_k) (high: removing them hurts) and sufficiency =
p(y|x) - p(y|r_k only) (low: they alone keep the prediction); AOPC is each averaged over the bins
k in {1, 5, 10, 20, 50}% (at least one word per bin). Words are removed, not masked, as ERASER does.
Rules: fidelity to the model's predictions on held-out data, coverage (share the non-default rules
decide), number of rules (the default line counted) and mean conditions per rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from steward.explain.capture import Explainable, pad_batch
from steward.explain.rules import Analysis, Instance, RuleList, keep_words

BINS = (0.01, 0.05, 0.1, 0.2, 0.5)


def top_words(scores: np.ndarray, fraction: float) -> set[int]:
    """The ceil(fraction * n) (at least 1) highest-scoring words; ties keep the earlier word."""
    k = max(1, math.ceil(fraction * len(scores)))
    return set(np.argsort(-np.asarray(scores), kind="stable")[:k].tolist())


@torch.no_grad()
def class_probability(expl: Explainable, instances: Sequence[Instance], classes: np.ndarray,
                      batch_size: int = 128) -> np.ndarray:
    """p(classes[i] | instances[i]) on the normal (fused) path; an instance left with no token reads
    as one padding token."""
    out = []
    for s in range(0, len(instances), batch_size):
        chunk = [i.tokens or [expl.pad_id] for i in instances[s: s + batch_size]]
        tokens, lengths = pad_batch(chunk, expl.pad_id)
        p = expl.scores(tokens, lengths).softmax(-1)
        out.append(p[torch.arange(len(chunk)), torch.as_tensor(classes[s: s + batch_size])].numpy())
    return np.concatenate(out) if out else np.zeros(0)


def eraser(expl: Explainable, instances: Sequence[Instance], scores: Sequence[np.ndarray], pred: np.ndarray,
           p_full: np.ndarray, bins: Sequence[float] = BINS) -> dict[str, Any]:
    """Comprehensiveness and sufficiency per bin and their AOPCs, averaged over instances."""
    comp, suff = {}, {}
    for b in bins:
        tops = [top_words(s, b) for s in scores]
        removed = [keep_words(i, set(range(len(i.words))) - t) for i, t in zip(instances, tops)]
        kept = [keep_words(i, t) for i, t in zip(instances, tops)]
        comp[b] = float(np.mean(p_full - class_probability(expl, removed, pred)))
        suff[b] = float(np.mean(p_full - class_probability(expl, kept, pred)))
    return {
        "comprehensiveness": comp,
        "sufficiency": suff,
        "aopc_comprehensiveness": float(np.mean(list(comp.values()))),
        "aopc_sufficiency": float(np.mean(list(suff.values()))),
    }


def rule_metrics(rules: RuleList, instances: Sequence[Instance], analysis: Analysis) -> dict[str, Any]:
    labels, fired = rules.predict(instances, analysis)
    return {
        "fidelity": float((labels == analysis.pred).mean()),
        "coverage": float((fired >= 0).mean()),
        "n_rules": len(rules.rules) + 1,
        "mean_length": float(np.mean([len(r.conditions) for r in rules.rules])) if rules.rules else 0.0,
        "n_instances": len(instances),
    }


def faithfulness_table(expl: Explainable, instances: Sequence[Instance], analysis: Analysis,
                       rules: RuleList | None, engine_base: str = "grad_attention",
                       bins: Sequence[float] = BINS) -> dict[str, dict[str, Any]]:
    """One row per relevance method in `analysis` (and 'rules', the symbolic engine, when given):
    ERASER figures on these instances; the rules row adds fidelity, coverage and size."""
    from steward.explain.rules import rule_relevance

    p_full = analysis.prob[np.arange(len(instances)), analysis.pred]
    table: dict[str, dict[str, Any]] = {}
    if rules is not None:
        engine = [rule_relevance(rules, i, a, r, int(p)) for i, a, r, p in
                  zip(instances, analysis.word_att, analysis.word_rel[engine_base], analysis.pred)]
        table["rules"] = {**eraser(expl, instances, engine, analysis.pred, p_full, bins),
                          **rule_metrics(rules, instances, analysis), "engine_base": engine_base}
    for method, scores in analysis.word_rel.items():
        table[method] = eraser(expl, instances, scores, analysis.pred, p_full, bins)
    return table


def format_table(table: dict[str, dict[str, Any]]) -> str:
    head = f"{'method':<22}{'comp AOPC':>11}{'suff AOPC':>11}{'fidelity':>10}{'coverage':>10}{'rules':>7}{'len':>6}"
    lines = [head]
    for name, row in table.items():
        extra = (f"{row['fidelity']:>10.3f}{row['coverage']:>10.3f}{row['n_rules']:>7d}{row['mean_length']:>6.2f}"
                 if "fidelity" in row else f"{'':>10}{'':>10}{'':>7}{'':>6}")
        lines.append(f"{name:<22}{row['aopc_comprehensiveness']:>11.4f}{row['aopc_sufficiency']:>11.4f}{extra}")
    return "\n".join(lines)


ENGINE_BASES = ("attention", "rollout", "grad_attention")
RELEVANCE_CHOICES = ("attention", "rollout", "grad_attention", "grad_cam", "integrated_gradients")
"""The methods the engine chooses its relevance among (per model, on the fitting data)."""


def _most_comprehensive(expl: Explainable, instances: Sequence[Instance], analysis: Analysis,
                        rankings: dict[str, Sequence[np.ndarray]], bins: Sequence[float]) -> tuple[str, dict[str, float]]:
    """The name of the ranking with the highest comprehensiveness AOPC on `instances` (ties: the first),
    and every ranking's AOPC."""
    p_full = analysis.prob[np.arange(len(instances)), analysis.pred]
    aopc = {name: eraser(expl, instances, r, analysis.pred, p_full, bins)["aopc_comprehensiveness"]
            for name, r in rankings.items()}
    return max(aopc, key=lambda n: aopc[n]), aopc


def choose_engine_base(expl: Explainable, instances: Sequence[Instance], analysis: Analysis, rules: RuleList,
                       candidates: Sequence[str] = ENGINE_BASES, bins: Sequence[float] = BINS) -> str:
    """The relevance the engine ranks words by after the firing rule's: the candidate whose engine
    ranking is most comprehensive (AOPC) on `instances`, which must be the data the rules were fitted
    on, never the held-out data they are judged on."""
    from steward.explain.rules import rule_relevance

    rankings = {base: [rule_relevance(rules, i, a, r, int(p)) for i, a, r, p in
                       zip(instances, analysis.word_att, analysis.word_rel[base], analysis.pred)]
                for base in candidates}
    return _most_comprehensive(expl, instances, analysis, rankings, bins)[0]


def choose_relevance(expl: Explainable, instances: Sequence[Instance], analysis: Analysis,
                     candidates: Sequence[str] = RELEVANCE_CHOICES,
                     bins: Sequence[float] = BINS) -> tuple[str, dict[str, float]]:
    """The relevance method that fits this model: the candidate with the highest comprehensiveness AOPC
    on `instances` (fitting data, never the held-out data), and each candidate's AOPC."""
    return _most_comprehensive(expl, instances, analysis, {m: analysis.word_rel[m] for m in candidates}, bins)
