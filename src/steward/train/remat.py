"""Rematerialization in a run: rank 0 decides (`steward.planning.remat`), every rank applies the same
policies (`steward.memory.apply`). The trainers call `plan_and_apply` after tensor parallel and
before compile and FSDP."""

from __future__ import annotations

from typing import Any

from steward.errors import StewardError
from steward.memory.apply import apply_policies
from steward.planning.remat import decide, fixed_record, needs_profile


def plan_and_apply(cfg, blocks, dims, device, args, is_main: bool, broadcast) -> dict[str, Any]:
    """Plan on rank 0 (a measured profile differs from rank to rank), hand the same plan to every rank
    through `broadcast`, and apply it to the model's `blocks`; returns the record summary.json keeps."""
    if not needs_profile(cfg, args, dims):
        record = fixed_record(cfg.memory.policy, len(blocks))
    else:
        record, error, message = None, None, None
        if is_main:
            try:
                record = decide(cfg, dims, device, args)
            except StewardError as e:
                error, message = e, str(e)
        record, message = broadcast((record, message))
        if message is not None:
            raise error if error is not None else StewardError(message)
    apply_policies(blocks, record["policies"], device)
    return record
