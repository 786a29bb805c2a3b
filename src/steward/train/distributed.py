"""Process-group set-up and the few collectives the trainer needs outside the model."""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from steward.config import JobConfig


@dataclass
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device
    owns_group: bool = False
    """init_distributed created the default process group (rather than joining one the caller made)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(cfg: JobConfig) -> DistInfo:
    """Join the job torchrun (or `steward train --nproc-per-node`) launched, or run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    want = cfg.train.device
    use_cuda = want == "cuda" or (want == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        from steward.config import ConfigError

        raise ConfigError("train.device: 'cuda' requested but torch sees no CUDA device; use auto or cpu")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            from steward.config import ConfigError

            raise ConfigError(
                f"train.device: local rank {local_rank} has no GPU ({torch.cuda.device_count()} on this host); "
                "start at most one process per GPU"
            )
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
        threads = cfg.train.threads or max(1, (os.cpu_count() or 1) // max(1, local_world))
        torch.set_num_threads(threads)
    owns = world > 1 and not dist.is_initialized()
    if owns:
        backend = cfg.parallel.backend
        if backend == "auto":
            backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend=backend, device_id=device if use_cuda else None)
    return DistInfo(rank, world, local_rank, local_world, device, owns)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s object on every rank (identity in one process)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's object, on every rank ([obj] in one process)."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    return start_all_reduce_mean(value)()


def start_all_reduce_mean(value: torch.Tensor) -> Callable[[], torch.Tensor]:
    """Start averaging `value` over the ranks in place; the returned call waits and returns it (so that
    the all-reduce overlaps whatever the caller does before waiting)."""
    if not dist.is_initialized():
        return lambda: value
    nccl = dist.get_backend() == "nccl"
    work = dist.all_reduce(value, op=dist.ReduceOp.AVG if nccl else dist.ReduceOp.SUM, async_op=True)

    def wait() -> torch.Tensor:
        work.wait()
        if not nccl:  # gloo has no AVG
            value.div_(dist.get_world_size())
        return value

    return wait


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def environment(info: DistInfo) -> dict[str, Any]:
    """Python, torch, CUDA, devices and hosts of the whole job (a collective: call on every rank)."""
    local = {
        "host": socket.gethostname(),
        "device": torch.cuda.get_device_name(info.device) if info.device.type == "cuda" else platform.processor()
        or platform.machine(),
    }
    everyone = gather_objects(local)
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "device_type": info.device.type,
        "devices": sorted({e["device"] for e in everyone}),
        "hosts": sorted({e["host"] for e in everyone}),
        "world_size": info.world_size,
        "local_world_size": info.local_world_size,
    }


def shutdown(info: DistInfo) -> None:
    """Destroy the default process group if `init_distributed` created it (a group the caller made is
    the caller's). Without it NCCL warns at exit that destroy_process_group() was not called."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()
