"""What a resume may do to its run directory, decided on rank 0 before anything is built or recorded.

- Resuming in a run directory compares the new config with the run's config.toml: a difference is
  refused with the changed keys, unless checkpoint.allow_changes names them; an allowed change is
  recorded (old and new values) in config.toml's header and, through the governance callback, in the
  audit log as run.config_changed. Where and how this invocation resumes (job.out,
  checkpoint.resume, checkpoint.allow_changes) is not a change of the run.
- A run whose checkpoint is at train.steps and whose summary.json says so is finished: the trainer
  says so and returns that summary instead of running (and recording) its end again.
- A checkpoint past train.steps is refused (the run would end before it began).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from steward.config import ConfigError, JobConfig, config_hash, load_config, public_dict, to_toml
from steward.io import flatten_dict
from steward.train import checkpoint as ckpt
from steward.train.checks import allowed_changes

NOT_A_CHANGE = ("job.out", "checkpoint.resume", "checkpoint.allow_changes")
"""Keys that say where and how this invocation resumes, not what the run is."""


def _flat(cfg: JobConfig) -> dict[str, Any]:
    """section.key -> value as config.toml holds it (public_dict: what is compared is what is written)."""
    return flatten_dict(public_dict(cfg), sep=".", leaf=lambda v: v)


def config_changes(old: JobConfig, new: JobConfig) -> dict[str, dict[str, Any]]:
    """key -> {"old", "new"} for every key whose value differs, as they may be recorded: as config.toml
    holds them, with any credential in a URL masked (steward.config.credentials)."""
    a, b = _flat(old), _flat(new)
    return {k: {"old": a.get(k), "new": b[k]} for k in b if k not in NOT_A_CHANGE and a.get(k) != b[k]}


@dataclasses.dataclass
class ResumeCheck:
    checkpoint: Path | None = None
    """The checkpoint to resume from (None: start from step 0)."""

    step: int | None = None
    """Its step, from its manifest (None when the manifest is unreadable: loading it says why)."""

    changes: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    """Allowed config changes against the run's config.toml: key -> {"old", "new"}."""

    previous_config_sha256: str = ""
    """The hash of the config the run had before the changes."""

    finished: dict[str, Any] | None = None
    """The summary of a run that has nothing left to do."""


def _checkpoint_step(path: Path) -> int | None:
    try:
        return int(json.loads((path / ckpt.MANIFEST).read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _previous_config(run_dir: Path) -> JobConfig | None:
    path = run_dir / "config.toml"
    if not path.is_file():
        return None
    try:
        return load_config(path)
    except ConfigError as e:
        raise ConfigError(f"checkpoint.resume: {path} no longer loads ({e}); resume with a config it "
                          "holds, or start a new run") from None


def check_resume(cfg: JobConfig, run_dir: Path) -> ResumeCheck:
    """Rank 0, before the run directory is written: ConfigError for a resume that must not happen."""
    c = cfg.checkpoint
    if not c.resume:
        return ResumeCheck()
    check = ResumeCheck()
    previous = _previous_config(run_dir)
    if previous is not None:
        check.changes = config_changes(previous, cfg)
        check.previous_config_sha256 = config_hash(previous)
        refused = [k for k in check.changes if k not in allowed_changes(cfg)]
        if refused:
            shown = ", ".join(f"{k} ({check.changes[k]['old']!r} -> {check.changes[k]['new']!r})" for k in refused)
            raise ConfigError(
                f"checkpoint.resume: the config differs from {run_dir / 'config.toml'} in {shown}; resume with "
                f"the run's values, or allow the change with --checkpoint.allow_changes {','.join(refused)}"
            )
    check.checkpoint = ckpt.resolve_resume(run_dir, c.resume)
    if check.checkpoint is None:
        return check
    check.step = _checkpoint_step(check.checkpoint)
    if check.step is not None and check.step > cfg.train.steps:
        raise ConfigError(f"train.steps: {cfg.train.steps} is before step {check.step} of the checkpoint "
                          f"{check.checkpoint}; give --train.steps {check.step} or more")
    summary = _summary(run_dir)
    if check.step == cfg.train.steps and summary is not None and summary.get("steps") == check.step:
        check.finished = summary
    return check


def _summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def finished_message(run_dir: Path, check: ResumeCheck) -> str:
    return (f"run {run_dir} is finished: its checkpoint and summary.json are at train.steps {check.step}; "
            "nothing to do (to train on, resume with a larger --train.steps and --checkpoint.allow_changes "
            "train.steps)")


def config_text(cfg: JobConfig, run_dir: Path, check: ResumeCheck) -> str:
    """config.toml: the resolved config, under a header of comments that records each allowed change
    of a resume (the earlier ones kept)."""
    text = to_toml(cfg)
    if not check.changes:
        return text
    old = (run_dir / "config.toml").read_text().splitlines()
    header = old[:next((i for i, line in enumerate(old) if not line.startswith("#")), len(old))]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    where = f"resumed from {check.checkpoint.name}" if check.checkpoint is not None else "restarted at step 0"
    header.append(f"# {stamp}: {where} with changes allowed by checkpoint.allow_changes:")
    header += [f"#   {k}: {json.dumps(v['old'])} -> {json.dumps(v['new'])}" for k, v in check.changes.items()]
    return "\n".join(header) + "\n" + text
