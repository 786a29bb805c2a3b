"""The training loop: one process, or one rank of a torchrun job on a data-parallel mesh."""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from steward.comm import build_grad_sync
from steward.config import ConfigError, JobConfig, config_hash
from steward.data import build_data, build_tokenizer
from steward.errors import StewardError
from steward.io import atomic_write_json, atomic_write_text
from steward.models import ModelArgs, build_model, build_model_args, flops_per_token, load_hf_causal_lm
from steward.models.gpt import upcast
from steward.parallel import (
    ParallelDims,
    dp_rank,
    finish_gradient_sync,
    reshard_after_inference,
    set_gradient_sync,
)
from steward.train import checkpoint as ckpt
from steward.train.build import ModelFactory, build_parallel_model, param_dtype
from steward.train.callbacks import Callback, CallbackList, StopTraining
from steward.train.checks import check_job
from steward.train.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    broadcast_object,
    environment,
    init_distributed,
    start_all_reduce_mean,
)
from steward.train.energy import EnergyMeter, JobLaps, build_meter, energy_summary
from steward.train.metrics import MetricsWriter, Progress, device_peak_flops, peak_memory_bytes
from steward.train.optim import build_optimizer, build_scheduler
from steward.train.resume import ResumeCheck, check_resume, config_text, finished_message


def resolve_run_dir(cfg: JobConfig) -> Path:
    """Where this run writes; refuses to mix a new run into a finished one."""
    c = cfg.checkpoint
    if cfg.job.out:
        run_dir = Path(cfg.job.out)
    elif c.resume and c.resume != "latest":
        run_dir = Path(c.resume).resolve().parent.parent  # RUN_DIR/checkpoints/step-N
    elif c.resume == "latest":
        raise ConfigError("checkpoint.resume: 'latest' needs --job.out naming the run directory to resume")
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        run_dir = Path("runs") / stamp
        n = 1
        while run_dir.exists():
            run_dir = Path("runs") / f"{stamp}-{n}"
            n += 1
    if (run_dir / "config.toml").exists() and not c.resume:
        if not cfg.job.overwrite:
            raise ConfigError(
                f"job.out: {run_dir} already holds a run; choose another --job.out, continue it with "
                "--checkpoint.resume latest, or replace it with --job.overwrite true"
            )
        # a new run in the same folder: drop the old run's outputs, never the append-only audit log
        for name in ("metrics.jsonl", "summary.json"):
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return run_dir


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(upcast(logits.flatten(0, 1)), targets.flatten())


class Trainer:
    cfg: JobConfig
    dist: DistInfo
    dims: ParallelDims
    run_dir: Path
    env: dict[str, Any]
    config_hash: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    step: int
    datasets: list[dict[str, Any]]
    resume_check: ResumeCheck
    """What setup found about the resume (checkpoint, allowed config changes, a finished run)."""
    energy: EnergyMeter | None
    """The energy meter of the training loop (None with energy.enabled false)."""
    memory: dict[str, Any]
    """The rematerialization plan (decided by steward.planning.remat, applied by steward.memory): policies
    per block, predicted peak, budget."""

    def __init__(self, cfg: JobConfig, callbacks: list[Callback] | None = None):
        self.cfg = cfg
        # the trainer's own callbacks first, then the caller's (governance by default): those then see
        # the figures the trainer's add to each step's metrics and to the summary
        user = callbacks if callbacks is not None else default_callbacks(cfg)
        self.callbacks = CallbackList([*self.task_callbacks(), *user])
        self.step = 0
        self.datasets = []
        self.figures: dict[str, Any] = {}  # running figures that go into summary.json and checkpoints
        self.plan = None  # the planner's choice, with parallel.auto
        self.pipeline = None  # this rank's stage and schedule, with parallel.pp > 1
        self.memory = {}  # set by _build_model's rematerialization step
        self.energy = None  # set when the loop starts
        self.energy_laps: JobLaps | None = None  # the meter's laps not yet summed over the ranks
        self.last_batch: torch.Tensor | None = None  # this rank's rows of the latest step (the drift monitor's input)
        self.comm_figures = None  # the step's byte counts being summed (grad_sync.start_end_step)

    def task_callbacks(self) -> list[Callback]:
        """The callbacks this kind of training brings (a subclass adds its own)."""
        if self.cfg.drift.enabled:
            from steward.train.drift import DriftCallback

            return [CommBytes(), DriftCallback(self.cfg)]
        return [CommBytes()]

    @property
    def rank(self) -> int:
        return self.dist.rank

    @property
    def world_size(self) -> int:
        return self.dist.world_size

    # ---- set-up -------------------------------------------------------------------------------

    def _rank0_hook(self, hook: str, *args: Any) -> None:
        """Run a rank-0 hook; a StopTraining raised there stops every rank with the same reason, and
        any other error stops the other ranks too instead of leaving them waiting in a collective."""
        reason, error = None, None
        if self.dist.is_main:
            try:
                self.callbacks(hook, self, *args)
            except StopTraining as e:
                reason = e.reason
            except Exception as e:
                error = e
        reason, failed = broadcast_object((reason, f"{hook} failed on rank 0: {error}" if error else None))
        if error is not None:
            raise error
        if failed:
            raise StewardError(failed)
        if reason:
            raise StopTraining(reason)

    def setup(self) -> None:
        cfg = self.cfg
        check_job(cfg)
        self.dist = init_distributed(cfg)
        if cfg.parallel.auto:
            from steward.planning.layout import apply_auto_plan

            # the planner's layout replaces the parallel degrees, micro-batch and recompute (rank 0
            # plans, so that every rank runs the same layout)
            self.plan = broadcast_object(apply_auto_plan(cfg, self.dist.world_size, self.dist.local_world_size)
                                         if self.dist.is_main else None)
            cfg = self.cfg = self.plan.apply_to(cfg)
        self.dims = ParallelDims.from_config(cfg, self.dist.world_size, self.dist.local_world_size)
        run_dir, check, error = None, None, None
        if self.dist.is_main:
            try:
                run_dir = resolve_run_dir(cfg)
                check = check_resume(cfg, run_dir)  # refuses a changed config, sees a finished run
                if check.finished is None and check.checkpoint is not None:
                    self._check_rank_states(check.checkpoint)
                if check.finished is None:
                    self._check_data(cfg)
                    run_dir.mkdir(parents=True, exist_ok=True)
                    atomic_write_text(run_dir / "config.toml", config_text(cfg, run_dir, check))
            except (ConfigError, OSError) as e:
                error = f"job.out: cannot use {cfg.job.out or 'runs/'}: {e}" if isinstance(e, OSError) else str(e)
        run_dir, check, error = broadcast_object((run_dir, check, error))
        if error:
            raise ConfigError(error)
        self.run_dir, self.resume_check = Path(run_dir), check
        self.config_hash = config_hash(cfg)
        self.env = environment(self.dist)
        self.progress = Progress(cfg.train.steps, 0, enabled=self.dist.is_main)
        self.metrics = MetricsWriter(self.run_dir / "metrics.jsonl" if self.dist.is_main else None)
        if check.finished is not None:  # nothing to train, nothing to record: its end has happened
            self.progress.message(finished_message(self.run_dir, check))
            self.progress.close()
            return
        self._rank0_hook("on_train_start")

        self.mesh = self.dims.build_mesh(self.dist.device.type)
        self.tokenizer = build_tokenizer(cfg.data.tokenizer)
        self.data = self._build_data()
        self.datasets = self.data.datasets()
        self._rank0_hook("on_data", self.datasets)

        self._build_model()
        shard_group = self.mesh["dp_replicate"].get_group() if cfg.parallel.shard_optimizer else None
        self.optimizer = build_optimizer(cfg.train, self.model, shard_group)
        if cfg.parallel.shard_gradients:
            self.model.bind(self.optimizer)  # ZeRO-2: each gradient is reduced onto its parameter's owner
        self.scheduler = build_scheduler(cfg.train, self.optimizer)
        resume = check.checkpoint
        if resume is not None:
            state = ckpt.load_checkpoint(resume, self.model, self.optimizer, self.rank)
            self.step = state["step"]
            self.scheduler.load_state_dict(state["scheduler"])
            self.data.train.load_state_dict(state["data"])
            self.figures = state["figures"]
            self._load_rank_states(resume)
            self._drop_history_after(self.step)
            self.progress = Progress(cfg.train.steps, self.step, enabled=self.dist.is_main)
            self.progress.message(f"resumed from {resume} at step {self.step}")
        elif cfg.checkpoint.resume == "latest":
            dropped = self._drop_history_after(-1)
            self.progress.message(f"no checkpoint in {self.run_dir}; starting from step 0"
                                  + (f" (metrics.jsonl starts afresh: {dropped} rows of an earlier attempt dropped)"
                                     if dropped else ""))

    def _drop_history_after(self, step: int) -> int:
        """This run continues from `step` (-1: from nothing): later checkpoints, metrics rows and the
        summary of the run it left belong to a history that no longer happened. Returns the number of
        metrics rows dropped (rank 0's; 0 elsewhere)."""
        dropped = 0
        if self.dist.is_main:
            ckpt.set_aside_after(self.run_dir, step)
            dropped = self.metrics.truncate_after(step)
            (self.run_dir / "summary.json").unlink(missing_ok=True)  # rewritten when this run ends
        barrier()
        return dropped

    def _build_data(self):
        """This rank's data (a subclass, e.g. steward.classify, reads other kinds)."""
        return build_data(self.cfg.data, self.cfg.train, self.tokenizer, dp_rank(self.mesh), self.dims.dp)

    def _model_factory(self) -> ModelFactory:
        """The module this trainer trains (a subclass, e.g. classify/, builds another)."""
        return lm_factory(self.cfg, self.tokenizer)

    def _build_grad_sync(self):
        """The data-parallel gradient aggregation (compression, hierarchical all-reduce, byte counts), or
        None for the wrappers' own all-reduce (a subclass without compression returns None)."""
        return build_grad_sync(self.cfg, self.dims, self.mesh, self.dist.device.type, self.dist.local_world_size)

    def _build_model(self) -> None:
        cfg, device = self.cfg, self.dist.device
        # the data-parallel gradient aggregation (compression, hierarchical all-reduce, byte counts)
        self.grad_sync = self._build_grad_sync()
        factory = self._model_factory()
        self.model_args = factory.args
        built = build_parallel_model(factory, cfg, self.dims, self.mesh, device, self.rank, self.dist.is_main,
                                     self.grad_sync)
        self.model, self.num_params, self.flops_per_token = built.model, built.num_params, built.flops_per_token
        self.memory, self.amp_dtype, self.autocast = built.memory, built.amp_dtype, built.autocast
        self.dtype = param_dtype(cfg.train)
        self.pipeline = None
        if self.dims.pp > 1:
            from steward.parallel.pipeline import Pipeline

            self.pipeline = Pipeline(self.model, self.mesh["pp"], self.dims.grad_accum, device, lm_loss)

    # ---- steps --------------------------------------------------------------------------------

    def forward_loss(self, batch: torch.Tensor) -> torch.Tensor:
        inputs, targets = batch[:, :-1], batch[:, 1:]
        with self.autocast:
            logits = self.model(inputs)
        return lm_loss(logits, targets)

    def train_step(self) -> tuple[float, float]:
        """One optimizer step over this rank's share of the global batch; returns (loss, grad norm)."""
        if self.pipeline is not None:
            return self._pipeline_step()
        accum = self.dims.grad_accum
        batch = self.last_batch = self.data.train.next_batch().to(self.dist.device, non_blocking=True)
        total = torch.zeros((), device=self.dist.device, dtype=self.dtype)
        for i, micro in enumerate(batch.chunk(accum)):
            last = i == accum - 1
            with set_gradient_sync(self.model, last):
                loss = self.forward_loss(micro)
                if accum > 1:
                    loss = loss / accum
                loss.backward()
            total += loss.detach()
        # the loss and the step's byte counts (final once backward has run) are summed over the ranks
        # while clipping and the optimizer step run
        sharded = finish_gradient_sync(self.model)  # ZeRO-2: the group its gradients are spread over
        mean_loss = start_all_reduce_mean(total)
        self.comm_figures = self.grad_sync.start_end_step() if self.grad_sync is not None else None
        grad_norm = clip_grad_norm(self.model, self.cfg.train.grad_clip, sum_group=sharded)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(mean_loss()), grad_norm

    @torch.no_grad()
    def evaluate(self) -> float:
        if self.pipeline is not None:
            return self._pipeline_evaluate()
        self.model.eval()
        losses = [self.forward_loss(b.to(self.dist.device)) for b in self.data.val_batches(self.cfg.train.val_batches)]
        reshard_after_inference(self.model)  # FSDP2: free what the forwards left gathered for a backward
        self.model.train()
        return float(all_reduce_mean(torch.stack(losses).mean()))

    # ---- pipeline parallel (pp > 1) -------------------------------------------------------------

    def _last_stage_mean(self, loss: torch.Tensor | None) -> float:
        """The mean over data-parallel ranks of a loss only the last pipeline stage holds: sum over
        the world (zeros elsewhere), divided by the ranks of the last stage (dp x tp; tp ranks agree)."""
        value = loss if loss is not None else torch.zeros((), device=self.dist.device, dtype=self.dtype)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.SUM)
        return float(value) / (self.world_size // self.dims.pp)

    def _pipeline_step(self) -> tuple[float, float]:
        batch = self.last_batch = self.data.train.next_batch().to(self.dist.device, non_blocking=True)
        with self.autocast:
            loss = self.pipeline.step(batch[:, :-1], batch[:, 1:])  # 1F1B over dims.grad_accum micro-batches
        grad_norm = clip_grad_norm(self.model, self.cfg.train.grad_clip, pp_group=self.mesh["pp"].get_group())
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return self._last_stage_mean(loss), grad_norm

    @torch.no_grad()
    def _pipeline_evaluate(self) -> float:
        self.model.eval()
        losses = []
        for b in self.data.val_batches(self.cfg.train.val_batches):
            b = b.to(self.dist.device)
            with self.autocast:
                losses.append(self.pipeline.evaluate(b[:, :-1], b[:, 1:]))
        self.model.train()
        return self._last_stage_mean(torch.stack(losses).mean() if self.pipeline.is_last else None)

    def _trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "scheduler": self.scheduler.state_dict(),
            "data": self.data.train.state_dict(),
            "figures": self.figures,
        }

    def _rank_states(self) -> dict[str, Any]:
        """State a checkpoint keeps per rank besides model, optimizer and trainer state (NAME/rank-R.pt)."""
        return {"comm": self.grad_sync.state_dict()} if self.grad_sync is not None else {}

    def _check_data(self, cfg: JobConfig) -> None:
        """Rank 0, before the run directory is written: ConfigError when the data cannot serve this run's
        settings (nothing to check here; a task's trainer adds its own), so a refusal leaves no run behind."""

    def _check_rank_states(self, resume: Path) -> None:
        """Rank 0, before the run directory is written: ConfigError when the checkpoint's `_rank_states`
        do not fit this run's settings (nothing to check here; a task's trainer adds its own)."""

    def _load_rank_states(self, resume: Path) -> None:
        """The counterpart of `_rank_states` on resume."""
        if self.grad_sync is not None:
            # the compressor's error feedback and warm start continue where they were; without
            # them (saved by another number of ranks) it restarts fresh, past the warm-up
            comm = ckpt.load_rank_state(resume, "comm", self.rank, self.world_size)
            if comm is not None:
                self.grad_sync.load_state_dict(comm)
            else:
                self.grad_sync.step = self.step

    def _sum_energy(self) -> list[float]:
        """The joules of each step since the previous sum, summed over the ranks (one collective for
        them all), added to the run's total in step order; nothing without a meter."""
        if self.energy_laps is None:
            return []
        joules = self.energy_laps.take()
        for j in joules:
            self.figures["energy_j"] += j
        return joules

    def save(self) -> Path:
        self.metrics.sync()  # the rows up to this checkpoint are on disk before it exists
        self._sum_energy()  # the checkpoint's total covers every step up to it
        self.figures["final_checkpoint"] = str(ckpt.checkpoint_root(self.run_dir) / f"step-{self.step}")
        path, manifest = ckpt.save_checkpoint(
            self.run_dir, self.step, self.model, self.optimizer, self._trainer_state(), self.rank, self.world_size,
            rank_states=self._rank_states(),
        )
        if self.dist.is_main:
            ckpt.prune_checkpoints(self.run_dir, self.cfg.checkpoint.keep)
            self.progress.message(f"checkpoint saved: {path}")
        self._rank0_hook("on_checkpoint", self.step, str(path), manifest)
        return path

    # ---- loop ---------------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        cfg, t = self.cfg, self.cfg.train
        tokens_per_step = t.batch_size * t.seq_len
        peak = device_peak_flops(self.dist.device)
        fig = self.figures
        fig.setdefault("train_time_s", 0.0)
        fig.setdefault("tokens_seen", 0)
        if self.step == 0 and t.val_every:
            fig["first_val_loss"] = self.evaluate()
            self.metrics.write({"step": 0, "val_loss": fig["first_val_loss"]})
            self.callbacks("on_eval", self, 0, {"val_loss": fig["first_val_loss"]})
        self.model.train()
        meter = self.energy = build_meter(cfg.energy, self.dist.device, self.dist.local_rank == 0) \
            if cfg.energy.enabled else None
        if meter is not None:
            fig.setdefault("energy_j", 0.0)
            self.energy_laps = JobLaps(meter, self.dist.device)
            meter.start()
        wall0 = time.perf_counter()
        while self.step < t.steps:
            if self.dist.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            lr = self.scheduler.get_last_lr()[0]
            loss, grad_norm = self.train_step()  # float() of the loss synchronises the device
            dt = time.perf_counter() - t0
            self.step += 1
            if not math.isfinite(loss):
                raise TrainingDiverged(f"loss is {loss} at step {self.step}; lower train.lr or check the data")
            fig["train_time_s"] += dt
            fig["tokens_seen"] += tokens_per_step
            fig.setdefault("initial_loss", loss)
            fig["final_loss"] = loss
            record: dict[str, Any] = {
                "step": self.step,
                "loss": loss,
                "lr": lr,
                "grad_norm": grad_norm,
                "step_time_s": dt,
                "tokens_per_s": tokens_per_step / dt,
                "peak_memory_bytes": peak_memory_bytes(self.dist.device),
            }
            if peak:
                record["mfu"] = self.flops_per_token * record["tokens_per_s"] / (peak * self.world_size)
            if (t.val_every and self.step % t.val_every == 0) or self.step == t.steps:
                record["val_loss"] = fig["final_val_loss"] = self.evaluate()
                fig.setdefault("first_val_loss", record["val_loss"])
                self.callbacks("on_eval", self, self.step, {"val_loss": record["val_loss"]})
            logged = self.step % t.log_every == 0 or "val_loss" in record or self.step == t.steps
            if meter is not None:  # since the previous step's reading: this step and its validation
                self.energy_laps.lap()
                if logged:  # summed over the ranks where a row shows it (and at checkpoints, at the end)
                    record["energy_j"] = self._sum_energy()[-1]
                    record["energy_source"] = meter.source
            self.callbacks("on_step_end", self, self.step, record)  # callbacks may add figures
            if logged:
                self.metrics.write(record)
            self.progress.update(self.step, record)
            c = cfg.checkpoint
            if c.enabled and c.every and self.step % c.every == 0 and self.step < t.steps:
                self.save()
        if cfg.checkpoint.enabled and (
            not ckpt.list_checkpoints(self.run_dir) or ckpt.list_checkpoints(self.run_dir)[-1][0] != self.step
        ):
            self.save()
        self.metrics.sync()
        self.progress.close()
        if meter is not None:
            meter.close()
        return self._finish(time.perf_counter() - wall0, peak)

    def _finish(self, wall: float, peak: float | None) -> dict[str, Any]:
        fig = self.figures
        # on the training device: an NCCL group has no CPU backend
        mem = torch.tensor(peak_memory_bytes(self.dist.device), dtype=torch.int64, device=self.dist.device)
        if torch.distributed.is_initialized():
            torch.distributed.all_reduce(mem, op=torch.distributed.ReduceOp.MAX)
        tokens_per_s = fig["tokens_seen"] / fig["train_time_s"] if fig["train_time_s"] else 0.0
        summary = {
            "run_dir": str(self.run_dir),
            "steps": self.step,
            "initial_loss": fig.get("initial_loss"),
            "final_loss": fig.get("final_loss"),
            "first_val_loss": fig.get("first_val_loss"),
            "final_val_loss": fig.get("final_val_loss"),
            "tokens_seen": fig["tokens_seen"],
            "tokens_per_s": tokens_per_s,
            "train_time_s": fig["train_time_s"],
            "wall_time_s": wall,
            "peak_memory_bytes": int(mem),
            "world_size": self.world_size,
            "strategy": self.dims.strategy,
            "dp_replicate": self.dims.dp_replicate,
            "dp_shard": self.dims.dp_shard,
            "tp": self.dims.tp,
            "pp": self.dims.pp,
            "grad_accum": self.dims.grad_accum,
            "device": self.dist.device.type,
            "model": self.cfg.model.hf_path or self.cfg.model.flavor,
            "num_params": self.num_params,
            "flops_per_token": self.flops_per_token,
            "mfu": self.flops_per_token * tokens_per_s / (peak * self.world_size) if peak else None,
            "final_checkpoint": fig.get("final_checkpoint"),
            "config_hash": self.config_hash,
            "memory": self.memory or None,  # the rematerialization plan and its predicted peak
            "energy": energy_summary(self.energy, fig["energy_j"], fig["tokens_seen"], self.cfg.energy)
            if self.energy is not None else None,
        }
        self.callbacks("on_summary", self, summary)  # callbacks may add figures
        if self.dist.is_main:
            atomic_write_json(self.run_dir / "summary.json", summary)
        self._rank0_hook("on_train_end", summary)  # its broadcast also keeps the ranks together
        return summary

    def run(self) -> dict[str, Any]:
        """Set up and train; on failure, rank 0 tells the callbacks before the error propagates."""
        try:
            self.setup()
            if self.resume_check.finished is not None:
                return self.resume_check.finished
            return self.train()
        except BaseException as e:
            if self.energy is not None:
                self.energy.close()  # its open counters and sampling thread
            if getattr(self, "dist", None) is not None and self.dist.is_main and hasattr(self, "run_dir"):
                try:
                    self.callbacks("on_train_failed", self, e)
                finally:
                    self.progress.close()
            raise


class TrainingDiverged(StewardError, FloatingPointError):
    """The loss became NaN or infinite."""


def clip_grad_norm(model: nn.Module, max_norm: float, pp_group=None, sum_group=None) -> float:
    """Clip (when max_norm > 0) and return the global gradient norm, also for FSDP2's sharded grads,
    (with `pp_group`) across the pipeline stages, which hold different parameters, and (with
    `sum_group`) across ranks that each hold some of the gradients (ZeRO-2)."""
    params = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.get_total_norm([p.grad for p in params], foreach=True)
    if hasattr(norm, "full_tensor"):  # a DTensor partial norm under FSDP2/TP: reduce it across shards
        norm = norm.full_tensor()
    for group in (pp_group, sum_group):
        if group is not None:
            norm = norm**2
            torch.distributed.all_reduce(norm, op=torch.distributed.ReduceOp.SUM, group=group)
            norm = norm.sqrt()
    if max_norm > 0:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm, foreach=True)
    return float(norm)


def lm_factory(cfg: JobConfig, tokenizer) -> ModelFactory:
    """The language model of `cfg`: a Hugging Face causal LM from model.hf_path, or the decoder flavor."""
    if cfg.model.hf_path:
        def load() -> nn.Module:
            model = load_hf_causal_lm(cfg.model.hf_path)
            if tokenizer.vocab_size > model.vocab_size:
                raise ConfigError(f"data.tokenizer: vocabulary {tokenizer.vocab_size} exceeds the model's "
                                  f"{model.vocab_size}; use the model's own tokenizer.json")
            return model

        return ModelFactory(make=load, init=lambda m: None, pretrained=True,
                            flops=lambda m, n: m.flops_per_token(cfg.train.seq_len))
    args = decoder_args(cfg, tokenizer)
    return ModelFactory(make=lambda: build_model(args, device="meta"), init=lambda m: m.init_weights(), args=args,
                        flops=lambda m, n: flops_per_token(args, cfg.train.seq_len))


def decoder_args(cfg: JobConfig, tokenizer) -> ModelArgs:
    """The flavor's shapes with the vocabulary (model.vocab_size, or the tokenizer's), train.seq_len and
    model.init_std."""
    vocab = cfg.model.vocab_size or tokenizer.vocab_size
    if vocab < tokenizer.vocab_size:
        raise ConfigError(f"model.vocab_size: {vocab} is smaller than the tokenizer's {tokenizer.vocab_size}")
    return dataclasses.replace(build_model_args(cfg.model.flavor, vocab_size=vocab, max_seq_len=cfg.train.seq_len),
                               init_std=cfg.model.init_std)


class CommBytes(Callback):
    """The bytes gradient aggregation sent in each step (intra-/inter-node, and what uncompressed would
    send: steward.comm's figures) into metrics.jsonl, their totals into summary.json. Does nothing when
    the trainer has no `grad_sync` (no data parallelism, or a plain all-reduce)."""

    def on_step_end(self, trainer: Trainer, step: int, metrics: dict[str, Any]) -> None:
        if getattr(trainer, "grad_sync", None) is not None:
            # a collective (every rank calls this hook): train_step started it, other steps did not
            started, trainer.comm_figures = trainer.comm_figures, None
            metrics.update(started() if started is not None else trainer.grad_sync.end_step())

    def on_summary(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        if getattr(trainer, "grad_sync", None) is not None:
            summary.update(trainer.grad_sync.summary())


def default_callbacks(cfg: JobConfig) -> list[Callback]:
    callbacks: list[Callback] = []
    if cfg.governance.enabled:
        from steward.train.governance_callback import GovernanceCallback

        callbacks.append(GovernanceCallback(cfg))
    return callbacks
