"""Typed configuration: `JobConfig` and how it is built from defaults, TOML and CLI flags.

Plain data: imports nothing of steward's but `steward.errors` and `steward.io`. Each section checks its
own values; `steward.train.checks.check_job` runs the checks that need other sections or subsystems."""

from steward.config.job import (
    Checkpoint,
    Comm,
    Data,
    Drift,
    Energy,
    Fairness,
    Governance,
    Job,
    JobConfig,
    Memory,
    Model,
    Parallel,
    Train,
)
from steward.config.manager import config_hash, describe, load_config, public_dict, to_dict, to_toml
from steward.errors import ConfigError

__all__ = [
    "Checkpoint",
    "Comm",
    "ConfigError",
    "Data",
    "Drift",
    "Energy",
    "Fairness",
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
    "public_dict",
    "to_dict",
    "to_toml",
]
