"""Rematerialization: per-block activation/recompute profile, a budget solver, and the policies.

`profile` measures (or, with fake tensors, predicts without allocating) what each block holds for
backward under keep / selective / full / offload; `plan` chooses one policy per block with the
least added time whose predicted peak fits the budget; `apply` makes each block run under its
policy. The trainer applies the plan after tensor parallel and before compile and FSDP.
"""

from steward.memory.apply import POLICIES, apply_policies, apply_policy, policy_of
from steward.memory.plan import (
    InfeasibleBudget,
    MemoryPlan,
    min_activation_peak,
    plan_and_apply,
    predict,
    solve,
    solve_activations,
)
from steward.memory.profile import (
    GPU_SPECS,
    ActivationTracker,
    DeviceSpec,
    ModelProfile,
    PolicyCost,
    measure_activations,
    profile_model,
    static_memory,
)

__all__ = [
    "GPU_SPECS",
    "POLICIES",
    "ActivationTracker",
    "DeviceSpec",
    "InfeasibleBudget",
    "MemoryPlan",
    "ModelProfile",
    "PolicyCost",
    "apply_policies",
    "apply_policy",
    "measure_activations",
    "min_activation_peak",
    "plan_and_apply",
    "policy_of",
    "predict",
    "profile_model",
    "solve",
    "solve_activations",
    "static_memory",
]
