"""The training loops `steward bench peers` times, one per system, run on every rank of a gloo job.

Every system trains the same job: Steward's decoder flavor as a plain `nn.Module` with the weights a
one-process Steward run starts from (`materialize`), this rank's batches from Steward's loader in the
same order, the same AdamW parameter groups (decay on matrices only), warmup + cosine schedule and
gradient clipping, in fp32. Steward itself runs through its `Trainer`; the peers through their own
wrappers, as their documentation writes the loop.

Each loop records the wall time and the process's CPU time (all its threads) at the end of every step
(the loss read back, as any loop that logs it), the mean loss over the ranks after the last step, the live tensor bytes after the last step
(every tensor Python can reach, each storage once, and every DDP reducer's gradient buckets, which
torch keeps in C++: the same count for every system) and the
process's max RSS, and the joules of every step (summed over the ranks) from the same energy meter,
built from the same cfg.energy: Steward's trainer writes them into metrics.jsonl (`step_energy`), the
peers' loops read a lap after each step (`timed_loop`).
"""

from __future__ import annotations

import gc
import inspect
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch import nn

from steward.config import JobConfig
from steward.io import read_jsonl

LoopResult = dict[str, Any]


def live_tensor_bytes() -> int:
    """Bytes of every distinct tensor storage reachable from Python (meta and wrapper tensors have none),
    plus the gradient buckets of every DDP reducer in the process (`ddp_bucket_bytes`): torch DDP's
    reducer holds them in C++, where this walk sees them only if something has handed one to Python
    (a comm hook's `bucket.buffer()`), so without them the count would charge the buckets to a run
    with a comm hook (Steward's) and not to one without (torch DDP's)."""
    gc.collect()
    seen: dict[int, torch.Tensor] = {}
    for obj in gc.get_objects():
        if not isinstance(obj, torch.Tensor) or obj.device.type == "meta":
            continue
        try:
            ptr = obj.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError, TypeError):
            continue  # a wrapper subclass (DTensor) or a freed storage: a local tensor is counted on its own
        if ptr and ptr not in seen:
            seen[ptr] = obj
    sizes = {ptr: t.untyped_storage().nbytes() for ptr, t in seen.items()}
    total = sum(sizes.values())
    for size in ddp_bucket_bytes():
        # a bucket that a comm hook showed Python is counted already: a flat tensor of the bucket's
        # size that C++ alone holds (no Python container refers to it); each stands for one bucket
        shown = next((ptr for ptr in list(seen) if sizes[ptr] == size and _held_by_cpp_only(ptr, seen)), None)
        if shown is None:
            total += size
        else:
            del seen[shown]
    return total


def _held_by_cpp_only(ptr: int, counted: dict[int, torch.Tensor]) -> bool:
    """`counted[ptr]` is a flat tensor that no Python container refers to but `counted` (running code
    aside): its Python object lives only because a C++ owner of the tensor keeps it."""
    tensor = counted[ptr]
    return tensor.dim() == 1 and all(r is counted or inspect.isframe(r) or inspect.isgenerator(r)
                                     for r in gc.get_referrers(tensor))


def ddp_bucket_bytes() -> list[int]:
    """The byte size of each gradient bucket of every DDP module in this process, from DDP's logging
    data: the buckets rebuilt after the first step, else the initial ones (both sized by bucket_cap_mb;
    gradient_as_bucket_view or not, they stay allocated between the steps)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    sizes: list[int] = []
    for obj in gc.get_objects():
        if isinstance(obj, DDP) and obj.logger is not None:
            data = obj._get_ddp_logging_data()
            text = data.get("rebuilt_bucket_sizes") if data.get("has_rebuilt_buckets") else data.get("bucket_sizes")
            sizes += [int(n) for n in str(text or "").split(",") if n.strip()]
    return sizes


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def step_energy(metrics_rows: list[dict[str, Any]]) -> tuple[dict[int, float] | None, str | None]:
    """Joules per step from metrics.jsonl's `energy_j` (Steward's energy meter) and the meter's source,
    or (None, None) when no row has them (energy.enabled false)."""
    rows = [r for r in metrics_rows if "energy_j" in r]
    energy = {int(r["step"]): float(r["energy_j"]) for r in rows}
    return energy or None, rows[-1]["energy_source"] if rows else None


def mean_over_ranks(loss: torch.Tensor) -> float:
    value = loss.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return float(value) / dist.get_world_size()


# ---- Steward -------------------------------------------------------------------------------------

def run_steward(cfg: JobConfig) -> LoopResult:
    from steward.train.callbacks import Callback
    from steward.train.distributed import shutdown
    from steward.train.trainer import Trainer, default_callbacks

    class Clock(Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []
            self.cpu: list[float] = []
            self.live = 0

        def on_step_end(self, trainer, step, metrics) -> None:
            self.ends.append(time.perf_counter())
            self.cpu.append(time.process_time())
            if step == trainer.cfg.train.steps:
                self.live = live_tensor_bytes()

    clock = Clock()
    trainer = Trainer(cfg, callbacks=[*default_callbacks(cfg), clock])
    summary = trainer.run()
    rows = [row for _, row in read_jsonl(trainer.run_dir / "metrics.jsonl", missing_ok=True)]  # rank 0's
    shutdown(trainer.dist)
    energy, source = step_energy(rows)
    return {"first_step_s": rows[0]["step_time_s"] if rows else None, "step_ends": clock.ends,
            "step_cpu_ends": clock.cpu, "final_loss": summary["final_loss"], "live_tensor_bytes": clock.live,
            "energy_j": energy, "energy_source": source}


# ---- the peers -----------------------------------------------------------------------------------

def param_groups(cfg: JobConfig, model: nn.Module) -> list[dict[str, Any]]:
    """Steward's AdamW parameter groups (weight decay on matrices and embeddings only)."""
    from steward.train.optim import build_optimizer

    return [{"params": g["params"], "weight_decay": g["weight_decay"]}
            for g in build_optimizer(cfg.train, model).param_groups]


def adamw_kwargs(cfg: JobConfig) -> dict[str, Any]:
    t = cfg.train
    return {"lr": t.lr, "betas": (t.beta1, t.beta2), "eps": 1e-8, "foreach": True}


class Timed(NamedTuple):
    """What timed_loop measured on this rank."""

    start: float
    """Wall time before the first step."""
    ends: list[float]
    """Wall time at each step's end."""
    cpu: list[float]
    """Process CPU time (all threads) at each step's end."""
    final_loss: float
    """The mean loss over the ranks after the last step."""
    energy_j: dict[int, float] | None
    """Joules of each step, summed over the ranks (None with energy.enabled false)."""
    energy_source: str | None


def timed_loop(step: Callable[[torch.Tensor], torch.Tensor], next_batch: Callable[[], torch.Tensor],
               cfg: JobConfig) -> Timed:
    """Run `step(batch) -> loss` cfg.train.steps times under the energy meter Steward's trainer builds
    from the same cfg.energy (a lap after each step; the laps are summed over the ranks once, after the
    loop, so that the timed steps have no collective that the peer's own loop lacks)."""
    from steward.train.energy import JobLaps, build_meter

    device = device_of(cfg)
    meter = build_meter(cfg.energy, device, int(os.environ.get("LOCAL_RANK", "0")) == 0) \
        if cfg.energy.enabled else None
    laps = JobLaps(meter, device) if meter is not None else None
    start, ends, cpu, loss = time.perf_counter(), [], [], None
    if meter is not None:
        meter.start()
    try:
        for _ in range(cfg.train.steps):
            loss = step(next_batch())
            loss.item()  # what a loop that logs its loss waits for
            ends.append(time.perf_counter())
            cpu.append(time.process_time())
            if laps is not None:
                laps.lap()
    finally:
        if meter is not None:
            meter.close()
    energy = dict(enumerate(laps.take(), start=1)) if laps is not None else None
    return Timed(start, ends, cpu, mean_over_ranks(loss), energy, meter.source if meter is not None else None)


def finish(cfg: JobConfig, timed: Timed, save: Callable[[Path], None]) -> LoopResult:
    """The loop's figures, after it saved what its documented loop saves into job.out (outside the timing)."""
    live = live_tensor_bytes()
    out = Path(cfg.job.out)
    out.mkdir(parents=True, exist_ok=True)
    save(out)
    return {"first_step_s": timed.ends[0] - timed.start, "step_ends": timed.ends, "step_cpu_ends": timed.cpu,
            "final_loss": timed.final_loss, "live_tensor_bytes": live, "energy_j": timed.energy_j,
            "energy_source": timed.energy_source}


def save_on_rank0(obj_fn: Callable[[], Any], name: str) -> Callable[[Path], None]:
    def save(out: Path) -> None:
        obj = obj_fn()  # may be a collective: every rank builds it
        if dist.get_rank() == 0:
            torch.save(obj, out / name)

    return save


def plain_step(cfg: JobConfig, forward: nn.Module, model: nn.Module, opt, sched):
    """The step of a bare PyTorch loop as torch's documentation writes it: forward through `forward` (the
    wrapper), backward, clip `model`'s gradients, optimizer and schedule step, zero the gradients."""
    from steward.train.trainer import lm_loss

    def step(batch: torch.Tensor) -> torch.Tensor:
        loss = lm_loss(forward(batch[:, :-1]), batch[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip, foreach=True)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return step


def torch_ddp(cfg: JobConfig, model: nn.Module, next_batch) -> LoopResult:
    from torch.nn.parallel import DistributedDataParallel as DDP

    from steward.train.optim import build_scheduler

    device = next(model.parameters()).device
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.AdamW(param_groups(cfg, model), **adamw_kwargs(cfg))
    sched = build_scheduler(cfg.train, opt)

    step = plain_step(cfg, ddp, model, opt, sched)

    return finish(cfg, timed_loop(step, next_batch, cfg), save_on_rank0(model.state_dict, "model.pt"))


def torch_fsdp2(cfg: JobConfig, model: nn.Module, next_batch) -> LoopResult:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from steward.parallel import blocks_of
    from steward.train.optim import build_scheduler

    mesh = init_device_mesh(next(model.parameters()).device.type, (dist.get_world_size(),))
    for block in blocks_of(model):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    opt = torch.optim.AdamW(param_groups(cfg, model), **adamw_kwargs(cfg))
    sched = build_scheduler(cfg.train, opt)

    step = plain_step(cfg, model, model, opt, sched)

    def full_state() -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    return finish(cfg, timed_loop(step, next_batch, cfg), save_on_rank0(full_state, "model.pt"))


def deepspeed_zero(stage: int) -> Callable[[JobConfig, nn.Module, Any], LoopResult]:
    def run(cfg: JobConfig, model: nn.Module, next_batch) -> LoopResult:
        import deepspeed

        from steward.train.optim import build_scheduler
        from steward.train.trainer import lm_loss

        t, world = cfg.train, dist.get_world_size()
        opt = torch.optim.AdamW(param_groups(cfg, model), **adamw_kwargs(cfg))
        ds_config = {
            "train_batch_size": t.batch_size,
            "train_micro_batch_size_per_gpu": t.batch_size // world,
            "gradient_accumulation_steps": 1,
            "gradient_clipping": t.grad_clip,
            "zero_optimization": {"stage": stage},
            "zero_allow_untested_optimizer": True,  # torch's AdamW, the optimizer every system uses
            "steps_per_print": 10**9,
        }
        engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=ds_config,
                                               lr_scheduler=lambda o: build_scheduler(t, o))

        def step(batch: torch.Tensor) -> torch.Tensor:
            loss = lm_loss(engine(batch[:, :-1]), batch[:, 1:])
            engine.backward(loss)
            engine.step()  # clips, steps the optimizer and the schedule, zeroes the gradients
            return loss

        return finish(cfg, timed_loop(step, next_batch, cfg), lambda out: engine.save_checkpoint(str(out)))

    return run


def fairscale_oss(cfg: JobConfig, model: nn.Module, next_batch) -> LoopResult:
    from fairscale.nn.data_parallel import ShardedDataParallel
    from fairscale.optim.oss import OSS

    from steward.train.optim import build_scheduler
    from steward.train.trainer import lm_loss

    opt = OSS(param_groups(cfg, model), optim=torch.optim.AdamW, **adamw_kwargs(cfg))
    sdp = ShardedDataParallel(model, opt)
    sched = build_scheduler(cfg.train, opt)

    def step(batch: torch.Tensor) -> torch.Tensor:
        loss = lm_loss(sdp(batch[:, :-1]), batch[:, 1:])
        loss.backward()
        opt.clip_grad_norm(cfg.train.grad_clip)
        opt.step()
        sched.step()
        # the wrapper's zero_grad: the gradients are views into its reduce buffers, and the
        # optimizer's zero_grad(set_to_none=True) would silently detach them (wrong training)
        sdp.zero_grad(set_to_none=False)
        return loss

    def full_state() -> dict[str, Any]:
        opt.consolidate_state_dict(recipient_rank=0)
        return {"model": model.state_dict(), "optimizer": opt.state_dict() if dist.get_rank() == 0 else None}

    return finish(cfg, timed_loop(step, next_batch, cfg), save_on_rank0(full_state, "checkpoint.pt"))


PEER_LOOPS: dict[str, Callable[[JobConfig, nn.Module, Any], LoopResult]] = {
    "torch-ddp": torch_ddp,
    "torch-fsdp2": torch_fsdp2,
    "deepspeed-zero1": deepspeed_zero(1),
    "deepspeed-zero2": deepspeed_zero(2),
    "deepspeed-zero3": deepspeed_zero(3),
    "fairscale-oss": fairscale_oss,
}


def device_of(cfg: JobConfig) -> torch.device:
    """This rank's device: its GPU with train.device cuda (benchmarks/gpu_peers.py), else the CPU."""
    if cfg.train.device == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def run_peer(name: str, cfg: JobConfig) -> LoopResult:
    """One peer's loop on this rank, in a gloo (CPU) or NCCL (GPU) group of the launcher's world."""
    from steward.data import build_data, build_tokenizer
    from steward.train.build import materialize
    from steward.train.trainer import lm_factory

    device = device_of(cfg)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.set_num_threads(cfg.train.threads or 1)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        tokenizer = build_tokenizer(cfg.data.tokenizer)
        model = materialize(lm_factory(cfg, tokenizer), cfg, device)
        data = build_data(cfg.data, cfg.train, tokenizer, dist.get_rank(), dist.get_world_size())
        return PEER_LOOPS[name](cfg, model, lambda: data.train.next_batch().to(device))
    finally:
        dist.destroy_process_group()


def run_system(name: str, cfg: JobConfig) -> LoopResult:
    result = run_steward(cfg) if name.startswith("steward") else run_peer(name, cfg)
    result["max_rss_bytes"] = max_rss_bytes()
    if device_of(cfg).type == "cuda":
        result["max_memory_allocated"] = torch.cuda.max_memory_allocated(device_of(cfg))
    return result


def main(argv: list[str]) -> int:
    """`python -m steward.bench.peers_systems SPEC.json`, once per rank: SPEC names the system, the
    config overrides and the folder where each rank writes rank-R.json."""
    import json
    from pathlib import Path

    from steward.config import load_config
    from steward.io import atomic_write_json

    spec = json.loads(Path(argv[0]).read_text())
    cfg = load_config(None, spec["overrides"])
    result = run_system(spec["system"], cfg)
    atomic_write_json(Path(spec["out"]) / f"rank-{os.environ.get('RANK', '0')}.json", result)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
