"""Governance settings that can be checked before anything runs: the policy file (TOML and every CEL
rule), the datasheets and model card files, the store URL, the key file and the workspace."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from steward.errors import ConfigError

if TYPE_CHECKING:
    from steward.config import JobConfig


def check_governance(cfg: JobConfig) -> None:
    """One-line ConfigErrors naming the governance.* key; nothing when governance is off."""
    g = cfg.governance
    if not g.enabled:
        return
    from steward.governance._util import GovernanceError

    if g.policy not in ("default", "none", ""):
        from steward.governance.policy import load_policy

        try:
            load_policy(g.policy)
        except GovernanceError as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith("governance.policy") else f"governance.policy: {msg}") from None
    if g.datasheets:
        from steward.governance.datasheets import load_datasheets_file

        try:
            load_datasheets_file(g.datasheets)
        except GovernanceError as e:
            raise ConfigError(str(e)) from None
    if g.model_card:
        from steward.governance.report import load_model_card

        try:
            load_model_card(g.model_card)
        except GovernanceError as e:
            raise ConfigError(str(e)) from None
    if g.store and g.store != "workspace":
        from steward.governance.store import parse_url

        try:
            parse_url(g.store)
        except GovernanceError as e:
            raise ConfigError(f"governance.store: {e}") from None
    if g.key_path and not Path(g.key_path).expanduser().is_file():
        raise ConfigError(f"governance.key_path: {g.key_path!r} does not exist (give an Ed25519 PEM private key, "
                          "or leave it empty for the workspace key)")
    if g.workspace and Path(g.workspace).expanduser().is_file():
        raise ConfigError(f"governance.workspace: {g.workspace!r} is a file; give a folder")
