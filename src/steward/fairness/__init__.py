"""Group fairness for classifiers fine-tuned from the decoder: metrics (subgroup / BPSN / BNSP AUC
gaps, FPED/FNED, parity differences, bootstrap intervals), identity data (Jigsaw layout loader and the
madlibs generator), adversarial debiasing (Zhang et al. 2018) and the real-time monitor callback."""

from steward.fairness.adversary import AdversarialDebiaser, grad_dot, projected_gradients
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
