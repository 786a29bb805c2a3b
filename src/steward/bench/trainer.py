"""`steward bench trainer`: the trainer's throughput against a bare PyTorch loop.

Same model, same batches, same optimizer work (AdamW, clipping, schedule), same precision, one
process. Both are timed over the same steps after a warm-up; rounds alternate so that drift of the
machine hits both; the best round of each is compared.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from steward.bench import register
from steward.config import load_config
from steward.data import build_data
from steward.train.callbacks import Callback
from steward.train.optim import build_optimizer, build_scheduler
from steward.train.trainer import Trainer, clip_grad_norm, lm_loss


class StepClock(Callback):
    """The time each step ended (after the trainer's own callbacks)."""

    def __init__(self) -> None:
        self.times: dict[int, float] = {}

    def on_step_end(self, trainer, step, metrics) -> None:
        self.times[step] = time.perf_counter()


def _trainer_round(cfg, warmup: int) -> tuple[float, Trainer]:
    clock = StepClock()
    trainer = Trainer(cfg, callbacks=[clock])
    trainer.run()
    steps = cfg.train.steps
    elapsed = clock.times[steps] - clock.times[warmup]
    return (steps - warmup) * cfg.train.batch_size * cfg.train.seq_len / elapsed, trainer


def _bare_round(cfg, trainer: Trainer, batches: list[torch.Tensor], warmup: int) -> float:
    """A plain loop over the same batches with a freshly built model of the same shape."""
    from steward.models import build_model

    torch.manual_seed(cfg.train.seed)
    model = build_model(trainer.model_args, device="cpu")
    opt = build_optimizer(cfg.train, model)
    sched = build_scheduler(cfg.train, opt)
    t_warm = 0.0
    for i, batch in enumerate(batches):
        loss = lm_loss(model(batch[:, :-1]), batch[:, 1:])
        loss.backward()
        clip_grad_norm(model, cfg.train.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        if i + 1 == warmup:
            t_warm = time.perf_counter()
    elapsed = time.perf_counter() - t_warm
    return (len(batches) - warmup) * cfg.train.batch_size * cfg.train.seq_len / elapsed


@register("trainer", "trainer throughput vs a bare PyTorch loop (same model, batch, precision)")
def bench_trainer(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="steward bench trainer")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--flavor", default="tiny")
    args, overrides = p.parse_known_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        base = [
            "--model.flavor", args.flavor, "--train.steps", str(args.steps), "--train.val_every", "0",
            "--checkpoint.enabled", "false", "--train.device", "cpu", "--governance.enabled", "false",
        ]
        trainer_tps, bare_tps = [], []
        for r in range(args.rounds):
            cfg = load_config(None, [*base, "--job.out", f"{tmp}/round{r}", *overrides])
            tps, trainer = _trainer_round(cfg, args.warmup)
            trainer_tps.append(tps)
            # the exact batches the trainer saw, from a fresh loader over the same data
            data = build_data(cfg.data, cfg.train, trainer.tokenizer, 0, 1)
            batches = [data.train.next_batch() for _ in range(args.steps)]
            bare_tps.append(_bare_round(cfg, trainer, batches, args.warmup))
    best_trainer, best_bare = max(trainer_tps), max(bare_tps)
    return {
        "benchmark": "trainer",
        "model": args.flavor,
        "steps_timed": args.steps - args.warmup,
        "rounds": args.rounds,
        "trainer_tokens_per_s": best_trainer,
        "bare_tokens_per_s": best_bare,
        "ratio": best_trainer / best_bare,
        "all_rounds": {"trainer": trainer_tps, "bare": bare_tps},
    }
