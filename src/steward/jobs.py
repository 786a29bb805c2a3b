"""A job of a config, whatever its train.task: train it in this process, start N local workers through
torch's elastic launcher, or load what a finished run trained. The one place that picks the trainer
and the model by task (above `steward.classify` and `steward.train`, below the CLI and benchmarks)."""

from __future__ import annotations

import gc
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steward.config import JobConfig, load_config
from steward.errors import StewardError


def make_trainer(cfg: JobConfig, callbacks=None):
    """The trainer of cfg's train.task (callbacks None: the default ones, governance included)."""
    if cfg.train.task == "classify":
        from steward.classify.trainer import ClassifyTrainer

        return ClassifyTrainer(cfg, callbacks)
    from steward.train.trainer import Trainer

    return Trainer(cfg, callbacks)


def run_training(cfg: JobConfig) -> dict[str, Any]:
    """Train in this process (one of torchrun's or launch_local's workers, or alone)."""
    from steward.train.distributed import shutdown

    trainer = make_trainer(cfg)
    summary = trainer.run()
    # after success only (as torchtitan's entry point): after a failure the error ends the process,
    # and a destroy could wait on peers still inside a collective
    shutdown(trainer.dist)
    # free the process group's last references (the wrapped model, its hooks' cycles) now, while the
    # interpreter is whole: left to its teardown, gloo's threads can abort the process (SIGABRT) after a
    # run that succeeded, and the launcher then reports a failed worker
    del trainer
    gc.collect()
    return summary


def leave(code: int) -> None:
    """End this process with `code` at once, its output flushed. For a process whose process group is still
    up: the interpreter's teardown of the group's threads can abort the process (SIGABRT), and the launcher
    (torchrun, `launch_local`) would then report a signal instead of `code`."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _worker(config_path: str | None, overrides: list[str]) -> dict[str, Any] | None:
    """Entry point of each local worker (spawned; must be importable)."""
    try:
        summary = run_training(load_config(config_path, overrides))
    except StewardError as e:
        if os.environ.get("RANK", "0") == "0":
            print(f"steward train: error: {e}", file=sys.stderr, flush=True)
        leave(2)  # the process group was never destroyed: a peer may still be inside a collective
    return summary if os.environ.get("RANK", "0") == "0" else None


def launch_local(config_path: str | None, overrides: list[str], nproc: int) -> dict[str, Any] | None:
    """Start `nproc` workers on this host (a c10d rendezvous on loopback); rank 0's summary or None."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from steward.train.checks import check_job

    check_job(load_config(config_path, overrides), nproc)  # fail here, in one line, before any worker starts
    lc = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"steward-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        monitor_interval=0.2,
        start_method="spawn",
    )
    try:
        results = elastic_launch(lc, _worker)(config_path, overrides)
    except ChildFailedError as e:
        # a worker's own exit code (2: a StewardError it printed) over a signal the launcher saw (negative)
        codes = [f.exitcode for f in e.failures.values() if f.exitcode > 0]
        raise WorkersFailed(max(codes) if codes else 1) from None
    return results.get(0)


class WorkersFailed(Exception):
    """A local worker exited non-zero; it has printed its own reason."""

    def __init__(self, code: int):
        super().__init__(f"a worker exited with code {code}")
        self.code = code


@dataclass
class TrainedRun:
    """What a finished run trained: its config, tokenizer and model (weights of `checkpoint`)."""

    cfg: JobConfig
    tokenizer: Any
    model: Any
    run_dir: Path
    checkpoint: Path


def load_trained(run_dir: str | Path) -> TrainedRun:
    """The model of RUN_DIR at its newest checkpoint (verified against its manifest), whole, in one
    process on the CPU, built from the run's config as its trainer built it (the language model or the
    classifier), in eval mode. Raises `steward.train.checkpoint.CheckpointError`."""
    from steward.data import build_tokenizer
    from steward.train import checkpoint as ckpt
    from steward.train.build import materialize

    run_dir = Path(run_dir)
    cfg, path = ckpt.run_config_and_checkpoint(run_dir)
    tokenizer = build_tokenizer(cfg.data.tokenizer)
    if cfg.train.task == "classify":
        from steward.classify.trainer import classifier_factory

        factory = classifier_factory(cfg, tokenizer, cfg.train.seq_len)
    else:
        from steward.train.trainer import lm_factory

        factory = lm_factory(cfg, tokenizer)
    model = materialize(factory, cfg)
    ckpt.load_model_weights(model, run_dir, path)  # verifies every file of the checkpoint first
    model.eval()
    if cfg.train.task == "classify":
        tokenizer = _identity_word_filter(cfg, tokenizer, path)
    return TrainedRun(cfg, tokenizer, model, run_dir, path)


def _identity_word_filter(cfg, tokenizer, checkpoint: Path):
    """The classifier's tokenizer as it trained: where its identity words were removed, the words its
    checkpoint recorded taken out of every text first."""
    from steward.fairness.identity_words import STATE, IdentityWordFilter, saved_words
    from steward.train import checkpoint as ckpt

    if not cfg.fairness.removes_identity_words:
        return tokenizer
    state = ckpt.load_rank_state(checkpoint, STATE, 0, 1, replicated=True)
    if state is None and cfg.fairness.identity_words == "auto":
        return tokenizer  # a run from before v8 (its config.toml has no identity_words: 'auto' by default)
    if state is None:
        raise ckpt.CheckpointError(f"{checkpoint}: fairness.identity_words is remove but the checkpoint has no "
                                   "identity words; it was not written by this run's trainer")
    try:
        return IdentityWordFilter(tokenizer, saved_words(state))
    except ValueError as e:
        raise ckpt.CheckpointError(f"checkpoint {checkpoint / STATE / 'rank-0.pt'}: {e}") from None


def _classify_run(run: Path, what: str) -> TrainedRun:
    """The trained classifier of RUN_DIR; FairnessError (one line) for another task or a missing checkpoint."""
    from steward.fairness.metrics import FairnessError

    return _run_of_task(run, "classify", f"{what} needs a classify run", FairnessError)


def fairness_domains(run_dir: str | Path, sources: list[str], *, before: str | Path | None = None, size: int = 2000,
                     seed: int = 0) -> dict[str, Any]:
    """The classifier's fairness per domain (each test-bed source's balanced test split), the spread of each
    family's gap across the domains, and with `before` (the same task without the adversary) the adversary's
    effect per domain (gap after - gap before). Written to RUN_DIR/fairness/domains.json. Raises FairnessError."""
    from steward.classify.evaluate import domain_reports, domain_spread
    from steward.io import atomic_write_json

    runs = {"after": run_dir, **({"before": before} if before else {})}
    results = {}
    for label, path in runs.items():
        t = _classify_run(Path(path), "fairness domains")
        reports = domain_reports(t.cfg, t.tokenizer, t.model, sources, size=size, seed=seed)
        results[label] = {"run_dir": str(path), "spread": domain_spread(reports), "domains": {
            name: {k: r[k] for k in ("n", "overall_auc", "final_score", "mean_abs_gap",
                                     "demographic_parity_difference", "equalized_odds_difference")}
            for name, r in reports.items()}}
    out = {"format": "steward-fairness-domains/1", "sources": list(sources), "size": size, "seed": seed, **results}
    if before:
        out["adversary_effect"] = {
            name: {fam: gap - results["before"]["domains"][name]["mean_abs_gap"][fam]
                   for fam, gap in d["mean_abs_gap"].items()} for name, d in results["after"]["domains"].items()}
    atomic_write_json(Path(run_dir) / "fairness" / "domains.json", out)
    return out


def evaluate_run(run_dir: str | Path, data: str, *, size: int = 3000, bootstrap: int = 200,
                 predictions: str | Path | None = None) -> dict[str, Any]:
    """The fairness report of a classify run's newest checkpoint on the identity set `data` ('madlibs' or
    a file in the identities layout): what `steward fairness eval` prints; with `predictions`, the
    per-example scores are written there as CSV. Raises FairnessError."""
    from steward.classify.evaluate import evaluate_classifier

    trained = _classify_run(Path(run_dir), "fairness eval")
    report = evaluate_classifier(trained.cfg, trained.tokenizer, trained.model, data, size=size, bootstrap=bootstrap,
                                 predictions=predictions)
    report["run_dir"] = str(run_dir)
    report["data"] = data
    return report


def _run_of_task(run: Path, task: str, need: str, error: type[StewardError]) -> TrainedRun:
    """The trained model of RUN_DIR when its train.task is `task`; `error` (one line) otherwise or when it has
    no complete checkpoint."""
    from steward.train import checkpoint as ckpt

    try:
        cfg, _ = ckpt.run_config_and_checkpoint(run)
        if cfg.train.task != task:
            raise error(f"RUN_DIR {run}: train.task is {cfg.train.task!r}; {need}")
        return load_trained(run)
    except ckpt.CheckpointError as e:
        raise error(str(e)) from None


def _lm_run(run_dir: Path, what: str) -> TrainedRun:
    """The trained language model of RUN_DIR; a one-line StewardError for a classify run or a missing checkpoint."""
    return _run_of_task(run_dir, "lm", f"{what} needs a language-model run", StewardError)


def domain_data(run: TrainedRun, spec: str, overrides: list[str]):
    """The run's data.* settings with data.source = spec and the caller's data.* overrides applied."""
    return load_config(run.run_dir / "config.toml", [*overrides, "--data.source", spec]).data


def evaluate_domains(run_dirs: list[str | Path], specs: list[str], *, max_windows: int = 64,
                     overrides: list[str] | None = None) -> dict[str, Any]:
    """Loss and perplexity of each run on the held-out windows of each data source (`steward eval`), and
    the matrix training domain (the run's data.source) x evaluation domain; written to each run's
    RUN_DIR/eval/domains.json. Raises StewardError (DataError, a run that cannot be read) in one line."""
    from steward.io import atomic_write_json
    from steward.train.evaluate import domain_loss, heldout_windows

    rows = []
    for run_dir in map(Path, run_dirs):
        run = _lm_run(run_dir, "steward eval")
        domains = {}
        for spec in specs:
            windows = heldout_windows(domain_data(run, spec, overrides or []), run.tokenizer,
                                      run.cfg.train.seq_len, max_windows)
            domains[spec] = domain_loss(run.model, windows)
        rows.append({"run_dir": str(run_dir), "trained_on": run.cfg.data.source, "checkpoint": run.checkpoint.name,
                     "seq_len": run.cfg.train.seq_len, "domains": domains})
    result = {"format": "steward-eval/1", "domains": list(specs), "max_windows": max_windows, "runs": rows,
              "matrix": [[row["domains"][s]["loss"] for s in specs] for row in rows]}
    for row in rows:
        atomic_write_json(Path(row["run_dir"]) / "eval" / "domains.json", result)
    return result


def drift_check(run_dir: str | Path, data: str, *, reference: str = "", max_windows: int = 0,
                overrides: list[str] | None = None) -> dict[str, Any]:
    """`steward drift`: the run's drift monitor (its drift.* settings; --drift.* overrides apply) calibrated on
    held-out sequences of `reference` (default: the run's data.source), then fed the held-out sequences of
    `data`; every window scored and the first alarm. Written to RUN_DIR/drift/offline.json.

    Each source's held-out sequences are shuffled (seed train.seed) before they are cut into batches, as
    the trainer's shuffled batches are: the calibration assumes a window's rows are drawn like the
    reference's, which consecutive sequences of one document are not. When `data` is the reference source,
    it is fed the sequences the reference did not use."""
    import numpy as np

    from steward.io import atomic_write_json
    from steward.train.drift import feed_stream, monitor_of, sequence_features
    from steward.train.evaluate import heldout_windows

    run = _lm_run(Path(run_dir), "steward drift")
    cfg = load_config(run.run_dir / "config.toml", overrides or [])
    monitor = monitor_of(cfg, run.tokenizer.vocab_size)
    rows, d = cfg.train.batch_size, cfg.drift
    need = rows * d.window * d.reference_windows
    ref_spec = reference or run.cfg.data.source
    rng = np.random.default_rng(cfg.train.seed)

    def shuffled(spec: str) -> np.ndarray:
        w = heldout_windows(domain_data(run, spec, overrides or []), run.tokenizer, cfg.train.seq_len, 0)
        w = w[rng.permutation(len(w))]
        return w[:max_windows] if max_windows else w

    ref = shuffled(ref_spec)
    new = ref[need:] if data == ref_spec else shuffled(data)
    if len(ref) < need or len(new) < rows * d.window:
        raise StewardError(
            f"--reference/--data: {len(ref)} held-out sequences of {ref_spec!r} and {len(new)} of {data!r}; the "
            f"reference needs drift.reference_windows x drift.window x train.batch_size = {need} and the data one "
            "window more; lower those (--drift.* flags) or give more data")
    feed_stream(monitor, ref[:need], *sequence_features(run.model, ref[:need], monitor.needs_embeddings), rows)
    results = feed_stream(monitor, new, *sequence_features(run.model, new, monitor.needs_embeddings), rows)
    windows = [{"window": r.index - d.reference_windows, **r.figures()} for r in results]
    first = next((w["window"] for w in windows if "drift_alarm" in w), None)
    out = {"format": "steward-drift/1", "run_dir": str(run_dir), "reference": ref_spec, "data": data,
           "detectors": list(d.detector_list), "window_batches": d.window, "batch_rows": rows, "alpha": d.alpha,
           "reference_windows": d.reference_windows, "calibration": monitor.calibrations[0],
           "windows": windows, "alarms": sum("drift_alarm" in w for w in windows), "first_alarm_window": first}
    atomic_write_json(run.run_dir / "drift" / "offline.json", out)
    return out
