"""`check_job`: every check on a job that needs more than one config section, a file or a subsystem's
knowledge, in one call, so that a bad job stops with a one-line ConfigError before anything starts.

Each section checks its own values when it is built (`steward.config`); each subsystem checks what it
knows (the mesh the degrees and the world, comm its compression and layout, memory its policy,
fairness and governance their settings and files). The trainer calls `check_job` first thing in
`setup`; the commands that load a config to act on it call it right after `load_config`.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from steward.comm.compressors import check_compression
from steward.config import ConfigError, JobConfig
from steward.config.manager import all_keys
from steward.data import check_batch_memory
from steward.fairness.checks import check_fairness
from steward.governance.checks import check_governance
from steward.memory.apply import check_memory
from steward.parallel.mesh import check_parallel, validate_world


def check_job(cfg: JobConfig, world_size: int | None = None, local_world_size: int | None = None) -> None:
    """Raise ConfigError (one line naming the key and the fix) for the first problem found. With
    `world_size` (and `local_world_size`, processes per node), also the degrees against the world."""
    _check_inputs(cfg)
    check_parallel(cfg)
    _check_cluster(cfg)
    check_governance(cfg)
    check_fairness(cfg)
    check_compression(cfg)
    check_memory(cfg)
    _check_drift(cfg)
    if world_size is not None:
        dp = validate_world(cfg, world_size, local_world_size)[2]
        # the processes of this node (all of them unless told) each hold their slice of every batch
        check_batch_memory(cfg.train, cfg.train.batch_size // dp * (local_world_size or world_size))


def _check_inputs(cfg: JobConfig) -> None:
    """The files and folders the trainer reads: model, tokenizer, checkpoint to resume (and the keys a
    resume may change)."""
    m, d, c = cfg.model, cfg.data, cfg.checkpoint
    if m.hf_path and not Path(m.hf_path).is_dir():
        raise ConfigError(f"model.hf_path: {m.hf_path!r} is not a directory (give a local Hugging Face model folder)")
    if d.tokenizer != "byte" and not Path(d.tokenizer).is_file():
        raise ConfigError(f"data.tokenizer: {d.tokenizer!r} is neither 'byte' nor a tokenizer JSON file")
    if c.resume and c.resume != "latest" and not Path(c.resume).exists():
        raise ConfigError(f"checkpoint.resume: {c.resume!r} does not exist; give 'latest' or a checkpoint folder")
    allowed_changes(cfg)  # names config keys


def _check_drift(cfg: JobConfig) -> None:
    """The drift monitor watches language-model training; its embedding detector needs the decoder's final
    norm on the stage that runs the monitor."""
    d = cfg.drift
    if not d.enabled:
        return
    if cfg.train.task != "lm":
        raise ConfigError("drift.enabled: the drift monitor watches language-model training (train.task = lm); "
                          "for a classifier use the fairness monitor, or `steward drift` on a language-model run")
    if "embedding" in d.detector_list and (cfg.model.hf_path or cfg.parallel.pp > 1):
        raise ConfigError("drift.detectors: 'embedding' needs the decoder flavor's final norm in one pipeline stage "
                          "(not model.hf_path, not parallel.pp > 1); use tokens or loss")


def _check_cluster(cfg: JobConfig) -> None:
    """parallel.cluster names a preset or a readable cluster file (the planner's topology)."""
    if not cfg.parallel.cluster:
        return
    from steward.planning.topology import ClusterError, load_cluster

    try:
        load_cluster(cfg.parallel.cluster)
    except ClusterError as e:
        raise ConfigError(f"parallel.cluster: {e}") from None


def allowed_changes(cfg: JobConfig) -> list[str]:
    """The keys of checkpoint.allow_changes; ConfigError for one that is no config key."""
    keys = [k.strip() for k in cfg.checkpoint.allow_changes.split(",") if k.strip()]
    known = all_keys()
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else " (`steward config` lists every key)"
            raise ConfigError(f"checkpoint.allow_changes: unknown config key '{key}'{hint}")
    return keys
