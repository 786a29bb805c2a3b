"""Explanations: attention capture, relevance (raw, rollout, gradient-weighted, Integrated Gradients),
a symbolic rule engine, and faithfulness against the standard baselines.

    expl = Explainable(model, "lm", classes=label_token_ids)      # or "classify" for a SequenceClassifier
    rel, fwd, pred = relevance(expl, tokens, lengths, ("rollout", "grad_attention"))
    an = analyse(expl, instances, METHODS)
    space = FeatureSpace.build(instances, an); rules = learn_rules(space.matrix(instances, an), an.pred, ...)
    faithfulness_table(expl, held_out, analyse(expl, held_out, METHODS), rules)
"""

from steward.explain.capture import Explainable, ExplainError, Forward, eager_attention, loaded_run, pad_batch
from steward.explain.faithfulness import (
    BINS,
    choose_engine_base,
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

__all__ = [
    "BINS",
    "METHODS",
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
    "eager_attention",
    "eraser",
    "explain_instance",
    "fit_rules",
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
]
