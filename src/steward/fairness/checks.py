"""The fairness settings checked against the rest of the job before anything runs."""

from __future__ import annotations

from pathlib import Path

from steward.config import ConfigError, JobConfig


def check_fairness(cfg: JobConfig) -> None:
    """The [fairness] section needs train.task classify, and its data files must exist."""
    t, f = cfg.train, cfg.fairness
    if f.enabled and t.task != "classify":
        raise ConfigError("fairness.enabled: the fairness evaluation needs a classifier; set --train.task classify")
    if f.adversary != "none" and t.task != "classify":
        raise ConfigError("fairness.adversary: adversarial debiasing trains a classifier; set --train.task classify")
    if f.predictor_loss != "bce" and t.task != "classify":
        raise ConfigError(f"fairness.predictor_loss: {f.predictor_loss} trains a classifier's rows; set --train.task "
                          "classify or --fairness.predictor_loss bce")
    if f.identity_words == "remove" and t.task != "classify":
        raise ConfigError("fairness.identity_words: remove takes words out of a classifier's texts; set --train.task "
                          "classify or --fairness.identity_words keep")
    if f.predictor_loss != "bce" and f.row_weights == "group_dro":
        raise ConfigError(f"fairness.predictor_loss: group DRO moves its weights on the cross-entropy, not on "
                          f"{f.predictor_loss}; set --fairness.predictor_loss bce or --fairness.loss_weights reweigh")
    if f.identity_columns and f.data == "madlibs" and f.eval_data in ("", "madlibs"):
        raise ConfigError("fairness.identity_columns: names columns of a data file; madlibs has its own identity "
                          "subgroups (give --fairness.data FILE or leave it empty)")
    for key, value in (("fairness.data", f.data), ("fairness.eval_data", f.eval_data)):
        if value and value != "madlibs" and not Path(value).expanduser().exists():
            raise ConfigError(f"{key}: {value!r} does not exist; give 'madlibs' or a .csv, .parquet or dataset folder")
