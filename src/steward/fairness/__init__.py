"""Group fairness for classifiers fine-tuned from the decoder: metrics (subgroup / BPSN / BNSP AUC
gaps, FPED/FNED, parity differences, bootstrap intervals), identity data (Jigsaw layout loader and the
madlibs generator), adversarial debiasing (Zhang et al. 2018): the one debiasing step and, in
`steward.fairness.estimator`, a scikit-learn estimator around it (imported on first use: it needs
scikit-learn). The monitor callback that runs these during training is `steward.classify.monitor`."""

from typing import Any

from steward.fairness.adversary import adversarial_step, grad_dot, projected_gradients
from steward.fairness.data import (
    JIGSAW_FAMILIES,
    IdentityData,
    generate_madlibs,
    load_identities,
)
from steward.fairness.metrics import (
    FairnessError,
    classification_metrics,
    fairness_report,
    generalized_mean,
    roc_auc,
    subgroup_metrics,
)

__all__ = [
    "JIGSAW_FAMILIES",
    "AdversarialDebiaser",
    "adversarial_step",
    "FairnessError",
    "IdentityData",
    "classification_metrics",
    "fairness_report",
    "generalized_mean",
    "generate_madlibs",
    "grad_dot",
    "load_identities",
    "projected_gradients",
    "roc_auc",
    "subgroup_metrics",
]


def __getattr__(name: str) -> Any:
    if name == "AdversarialDebiaser":  # scikit-learn only when asked for
        from steward.fairness.estimator import AdversarialDebiaser

        return AdversarialDebiaser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
