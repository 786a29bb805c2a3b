"""Rematerialization at run time: each transformer block runs under its policy (keep, selective,
full, offload). Which policy each block gets is decided by `steward.planning.remat` (its cost model
is `steward.planning.profile`); the trainer hands the decision to `apply_policies`, after tensor
parallel and before compile and FSDP.
"""

from steward.memory.apply import POLICIES, MemoryPolicyError, apply_policies, apply_policy, policy_of

__all__ = [
    "POLICIES",
    "MemoryPolicyError",
    "apply_policies",
    "apply_policy",
    "policy_of",
]
