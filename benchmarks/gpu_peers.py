"""`steward bench peers` on one GPU, with the peers that need CUDA: FairScale's FSDP and Megatron-core's
DDP with its distributed optimizer. Not part of the tests; unmeasured so far (no GPU was available to
the session that wrote it).

Run from a checkout on a machine with a CUDA GPU (about 5 minutes with the defaults: gpt2-small,
batch 8 x 256, 40 steps, 2 repetitions):
    PYTHONPATH=src python benchmarks/gpu_peers.py [--json] [--flavor gpt2-small --batch-size 16 --seq-len 1024]

Same job for every system as on the CPU (steward.bench.peers): Steward's decoder with the weights of a
one-process run, Steward's batches in the same order, AdamW with decay on matrices only, warmup +
cosine, clipping, fp32 (the loss after N steps is compared with Steward's, within --loss-tol), one
process on one GPU (NCCL), repetitions interleaved. Memory is `torch.cuda.max_memory_allocated` next to
the live tensor bytes and max RSS; the table goes to stderr, `--json` prints the figures. Megatron-core trains the same module through its DDP wrapper and
distributed optimizer (tensor parallelism would need Megatron's own GPT model: not the same job).
The same file is each rank's worker (`--worker SPEC`): it adds the GPU-only loops to the CPU ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from steward.bench import peers
from steward.bench.peers import Launcher, System
from steward.bench.peers_systems import (
    PEER_LOOPS,
    adamw_kwargs,
    finish,
    param_groups,
    save_on_rank0,
    timed_loop,
)
from steward.config import JobConfig
from steward.errors import StewardError

GPU_SYSTEMS = [
    System("steward-ddp", "Steward (1 GPU)", overrides=("--parallel.dp_shard", "1", "--parallel.dp_replicate", "1")),
    *(s for s in peers.SYSTEMS if not s.is_steward),
    System("fairscale-fsdp", "FairScale FSDP", needs="fairscale"),
    System("megatron-ddp", "Megatron-core DDP + dist. optimizer", needs="megatron.core"),
]


def fairscale_fsdp(cfg: JobConfig, model: nn.Module, next_batch) -> dict[str, Any]:
    from fairscale.nn import FullyShardedDataParallel

    from steward.train.optim import build_scheduler
    from steward.train.trainer import lm_loss

    groups = param_groups(cfg, model)  # unflattened parameters keep their identity inside the wrapper
    fsdp = FullyShardedDataParallel(model, flatten_parameters=False, mixed_precision=False)
    opt = torch.optim.AdamW(groups, **adamw_kwargs(cfg))
    sched = build_scheduler(cfg.train, opt)

    def step(batch: torch.Tensor) -> torch.Tensor:
        loss = lm_loss(fsdp(batch[:, :-1]), batch[:, 1:])
        loss.backward()
        fsdp.clip_grad_norm_(cfg.train.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return finish(cfg, timed_loop(step, next_batch, cfg), save_on_rank0(fsdp.state_dict, "model.pt"))


def megatron_ddp(cfg: JobConfig, model: nn.Module, next_batch) -> dict[str, Any]:
    from megatron.core import parallel_state
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
    from megatron.core.transformer import TransformerConfig

    from steward.train.optim import lr_factor
    from steward.train.trainer import lm_loss

    t = cfg.train
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=1, pipeline_model_parallel_size=1)
    args = model.args
    tcfg = TransformerConfig(num_layers=args.n_layers, hidden_size=args.dim, num_attention_heads=args.n_heads)
    ddp = DistributedDataParallel(tcfg, DistributedDataParallelConfig(grad_reduce_in_fp32=True,
                                                                      use_distributed_optimizer=True), model)
    # Megatron's default decay rule matches Steward's: no decay on 1-D parameters (norms, biases)
    opt = get_megatron_optimizer(OptimizerConfig(
        optimizer="adam", lr=t.lr, weight_decay=t.weight_decay, adam_beta1=t.beta1, adam_beta2=t.beta2,
        adam_eps=1e-8, clip_grad=t.grad_clip, bf16=False, fp16=False, use_distributed_optimizer=True), [ddp])
    step_no = 0

    def step(batch: torch.Tensor) -> torch.Tensor:
        nonlocal step_no
        for group in opt.param_groups:  # Steward's warmup + cosine, set as its scheduler would
            group["lr"] = t.lr * lr_factor(step_no, t)
        ddp.zero_grad_buffer()
        opt.zero_grad()
        loss = lm_loss(ddp(batch[:, :-1]), batch[:, 1:])
        loss.backward()
        ddp.finish_grad_sync()
        opt.step()
        step_no += 1
        return loss

    def save(out: Path) -> None:
        if dist.get_rank() == 0:
            torch.save(ddp.module.state_dict(), out / "model.pt")

    return finish(cfg, timed_loop(step, next_batch, cfg), save)


GPU_LOOPS = {"fairscale-fsdp": fairscale_fsdp, "megatron-ddp": megatron_ddp}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        from steward.bench.peers_systems import main as worker_main

        PEER_LOOPS.update(GPU_LOOPS)
        return worker_main(argv[1:])
    if "--reps" not in argv:
        argv = ["--reps", "2", *argv]  # 2 x 9 systems in about 5 minutes
    try:
        args, overrides = peers.parse_args(argv, GPU_SYSTEMS, prog="benchmarks/gpu_peers.py", flavor="gpt2-small")
    except StewardError as e:
        print(f"gpu_peers: {e}", file=sys.stderr)
        return 2
    if args.link:
        print("gpu_peers: --link: one GPU is one node, with no link to emulate; use `steward bench peers --link`",
              file=sys.stderr)
        return 2
    as_json = "--json" in overrides
    overrides = [a for a in overrides if a != "--json"]
    if not torch.cuda.is_available():
        print("gpu_peers: no CUDA device; run it on a machine with a GPU", file=sys.stderr)
        return 1
    how = Launcher(world=1, device="cuda", worker=(str(Path(__file__).resolve()), "--worker"), env={})
    result = peers.compare(args, ["--model.vocab_size", "50304", *overrides], how)
    result["gpu"] = torch.cuda.get_device_name()
    if as_json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
