"""Explanations: attention capture, relevance (raw, rollout, gradient-weighted, Integrated Gradients),
a symbolic rule engine, and faithfulness against the standard baselines.

    expl = Explainable(model, "lm", classes=label_token_ids)      # or "classify" for a SequenceClassifier
    rel, fwd, pred = relevance(expl, tokens, lengths, ("rollout", "grad_attention"))
    an = analyse(expl, instances, RELEVANCE_CHOICES)
    rules, base, _ = fit_searched(expl, instances, an, class_names)   # the beam; or fit_rules (covering)
    faithfulness_table(expl, held_out, analyse(expl, held_out, METHODS), rules, engine_base=base)
"""

from steward.explain.capture import Explainable, ExplainError, Forward, eager_attention, loaded_run, pad_batch
from steward.explain.faithfulness import (
    BINS,
    RELEVANCE_CHOICES,
    choose_engine_base,
    choose_relevance,
    eraser,
    faithfulness_table,
    format_table,
    rule_metrics,
)
from steward.explain.relevance import (
    METHODS,
    grad_attention,
    grad_cam,
    integrated_gradients,
    raw_attention,
    relevance,
    rollout,
)
from steward.explain.rules import (
    Analysis,
    Condition,
    FeatureSpace,
    Instance,
    Rule,
    RuleList,
    analyse,
    explain_instance,
    fit_rules,
    identity_terms,
    learn_rules,
    make_instance,
)
from steward.explain.search import SearchSettings, fit_beam_rules, fit_searched, search_rules
from steward.explain.simulate import WordUser, simulatability

__all__ = [
    "BINS",
    "METHODS",
    "RELEVANCE_CHOICES",
    "SearchSettings",
    "WordUser",
    "Analysis",
    "Condition",
    "ExplainError",
    "Explainable",
    "FeatureSpace",
    "Forward",
    "Instance",
    "Rule",
    "RuleList",
    "analyse",
    "choose_engine_base",
    "choose_relevance",
    "eager_attention",
    "eraser",
    "explain_instance",
    "fit_beam_rules",
    "fit_rules",
    "fit_searched",
    "faithfulness_table",
    "format_table",
    "grad_attention",
    "grad_cam",
    "identity_terms",
    "integrated_gradients",
    "learn_rules",
    "loaded_run",
    "make_instance",
    "pad_batch",
    "raw_attention",
    "relevance",
    "rollout",
    "rule_metrics",
    "search_rules",
    "simulatability",
]
