"""Typed configuration: `JobConfig` and how it is built from defaults, TOML and CLI flags."""

from steward.config.job import (
    Checkpoint,
    Comm,
    Data,
    Governance,
    Job,
    JobConfig,
    Memory,
    Model,
    Parallel,
    Train,
)
from steward.config.manager import (
    ConfigError,
    config_hash,
    describe,
    load_config,
    to_dict,
    to_toml,
    validate,
    validate_world,
)

__all__ = [
    "Checkpoint",
    "Comm",
    "ConfigError",
    "Data",
    "Governance",
    "Job",
    "JobConfig",
    "Memory",
    "Model",
    "Parallel",
    "Train",
    "config_hash",
    "describe",
    "load_config",
    "to_dict",
    "to_toml",
    "validate",
    "validate_world",
]
