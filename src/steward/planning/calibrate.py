"""`steward plan --calibrate`: measure this machine's matmul throughput, memory bandwidth, per-layer
framework overhead and collective bandwidth, and store them (topology.calibration_path) for the
planner. Each figure is the best of several timed repetitions after a warm-up: the planner wants
what the hardware can do, and the best run is the one least disturbed by other work.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import torch

from steward.io import atomic_write_json
from steward.planning.topology import calibration_path
from steward.planning.units import GIB, MIB


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_time(fn, device: torch.device, reps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_flops(device: torch.device, dtype: torch.dtype, n: int, reps: int = 5) -> float:
    """FLOP/s of an n x n x n product on random data (2 n^3 FLOPs)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    return 2 * n**3 / _best_time(lambda: a @ b, device, reps)


def memory_bandwidth(device: torch.device, nbytes: int, reps: int = 5) -> float:
    """Bytes/s of a large copy, counting bytes read plus bytes written."""
    src = torch.empty(nbytes // 4, device=device).uniform_()
    dst = torch.empty_like(src)
    return 2 * nbytes / _best_time(lambda: dst.copy_(src), device, reps)


def gemm_half(n_big: int, rate_big: float, n_small: int, rate_small: float) -> float:
    """The GEMM intensity at which the rate halves, from two square products: rate(n) = R I / (I + h)
    with I = n / 3, solved for h (0 when the small one is as fast; large when it barely runs)."""
    i_b, i_s, ratio = n_big / 3, n_small / 3, rate_small / rate_big
    if ratio >= 1:
        return 0.0
    if ratio * i_b <= i_s:
        return 1e6
    return i_s * i_b * (1 - ratio) / (ratio * i_b - i_s)


def attention_seconds(device: torch.device, heads: int, seq: int, head_dim: int, reps: int = 5) -> float:
    """Forward and backward of causal scaled_dot_product_attention over one sequence."""
    q, k, v = (torch.randn(1, heads, seq, head_dim, device=device, requires_grad=True) for _ in range(3))

    def step():
        torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()

    return _best_time(step, device, reps)


def elementwise_bandwidth(device: torch.device, elements: int, reps: int = 5) -> float:
    """Bytes/s of a typical element-wise kernel chain (SiLU times a gate, forward and backward), counting
    each tensor read or written once: forward reads 2 and writes 1, backward reads 3 and writes 2."""
    x, y = (torch.randn(elements, device=device, requires_grad=True) for _ in range(2))
    g = torch.randn(elements, device=device)

    def step():
        (torch.nn.functional.silu(x) * y).backward(g)

    return 8 * 4 * elements / _best_time(step, device, reps)


def kernel_figures(device: torch.device, n_big: int, rate_big: float, quick: bool = False) -> dict[str, float]:
    """This host's kernel figures the cost model reads (`cost.host_constants`): the GEMM shape factor
    from a 64-wide product against the n_big one, fused attention's rate as a fraction of the large
    product's (FLOPs as the model counts them, 6 h s per token with the causal half skipped), and the
    element-wise kernels' bandwidth."""
    half = gemm_half(n_big, rate_big, 64, matmul_flops(device, torch.float32, 64))
    heads, seq, hd = 4, 128 if quick else 256, 64
    att_rate = 6 * heads * hd * seq * seq / attention_seconds(device, heads, seq, hd)
    gemm = (n_big / 3 + half) / (n_big / 3)
    return {"matmul_n": float(n_big), "gemm_half": half, "attention": att_rate / (rate_big * gemm),
            "elementwise_bandwidth": elementwise_bandwidth(device, (1 if quick else 4) * 2**20)}


def layer_overhead(device: torch.device, wrap: str = "plain", reps: int = 20) -> float:
    """Seconds for forward + backward of one tiny block: what each layer costs beyond its arithmetic
    (op dispatch, autograd, kernel launches). `wrap`: 'plain', 'tp' (tensor parallel with sequence
    parallel) or 'fsdp' (FSDP2) over a one-rank mesh, which measures DTensor's and FSDP2's own
    per-layer work (their collectives over one rank cost next to nothing)."""
    from steward.models.gpt import ModelArgs, TransformerBlock, precompute_rope

    args = ModelArgs(dim=16, n_layers=1, n_heads=2, vocab_size=8, multiple_of=16, max_seq_len=8)
    block = TransformerBlock(args).to(device)
    rope = precompute_rope(args.head_dim, 8, args.rope_theta, device=device)
    x = torch.randn(1, 8, 16, device=device, requires_grad=True)
    if wrap != "plain":
        from torch.distributed.device_mesh import DeviceMesh

        mesh = DeviceMesh(device.type, [0])
        if wrap == "tp":
            from steward.parallel.tp import apply_tensor_parallel

            holder = torch.nn.Module()  # apply_tensor_parallel walks a model's .layers
            holder.layers = torch.nn.ModuleDict({"0": block})
            apply_tensor_parallel(holder, mesh)
        else:
            from torch.distributed.fsdp import fully_shard

            fully_shard(block, mesh=mesh)

    def step():
        block(x, rope).sum().backward()

    return _best_time(step, device, reps, warmup=3)


def layer_overheads(device: torch.device) -> dict[str, float]:
    """Per-layer overhead plain, and under TP and FSDP2 when a one-rank process group can be made here
    (not inside a running job, whose group is in use)."""
    import torch.distributed as dist

    out = {"plain": layer_overhead(device)}
    if dist.is_initialized():
        return out
    dist.init_process_group("gloo" if device.type == "cpu" else "nccl", store=dist.HashStore(), rank=0, world_size=1)
    try:
        for wrap in ("tp", "fsdp"):
            out[wrap] = layer_overhead(device, wrap)
    finally:
        dist.destroy_process_group()
    return out


def _collective_worker(rank: int, world: int, port: int, backend: str, sizes: list[int], reps: int, out: str):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=rank, world_size=world)
    times = []
    for size in sizes:
        t = torch.ones(size // 4, device=device)

        def run(t=t):
            dist.all_reduce(t)

        for _ in range(2):
            run()
        _sync(device)
        best = float("inf")
        for _ in range(reps):
            dist.barrier()
            t0 = time.perf_counter()
            run()
            _sync(device)
            best = min(best, time.perf_counter() - t0)
        times.append(best)
    if rank == 0:
        torch.save(times, out)
    dist.destroy_process_group()


def collective(nproc: int, backend: str, sizes: list[int] | None = None, reps: int = 5) -> dict[str, Any]:
    """All-reduce times between `nproc` local processes, read with the ring model
    t = 2 (n-1) alpha + 2 (n-1)/n bytes / bandwidth: bandwidth from the slope between the two largest
    messages, alpha from the smallest (a least-squares fit over all sizes lets the large messages'
    noise swamp the latency)."""
    import tempfile

    import numpy as np
    import torch.multiprocessing as mp

    sizes = sizes or [2**k for k in range(12, 25, 2)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "times.pt")
        mp.spawn(_collective_worker, args=(nproc, port, backend, sizes, reps, out), nprocs=nproc, join=True)
        times = torch.load(out)
    n = nproc
    x = np.array([2 * (n - 1) / n * s for s in sizes], dtype=float)
    y = np.array(times, dtype=float)
    slope = (y[-1] - y[-2]) / (x[-1] - x[-2])
    bandwidth = float(1.0 / slope) if slope > 0 else float(x[-1] / y[-1])
    latency = float(y[0] - x[0] / bandwidth) / (2 * (n - 1))
    latency = max(latency, float(y[0]) / (4 * (n - 1)))  # never below half the smallest message's time
    return {
        "name": f"{backend} all-reduce between {n} local processes",
        "backend": backend,
        "nproc": n,
        "bandwidth": bandwidth,
        "latency": latency,
        "sizes": sizes,
        "times": times,
    }


def calibrate(nproc: int = 2, path: Path | None = None, quick: bool = False) -> dict[str, Any]:
    """Measure and store this machine's figures; returns what was stored (with its path)."""
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    threads = torch.get_num_threads()
    if not cuda:
        torch.set_num_threads(1)  # one worker process per core is how the trainer runs here
    try:
        n_fp32 = 4096 if cuda else (256 if quick else 512)
        flops = {"fp32": matmul_flops(device, torch.float32, n_fp32)}
        kernels = {} if cuda else kernel_figures(device, n_fp32, flops["fp32"], quick)
        if cuda:
            flops["bf16"] = matmul_flops(device, torch.bfloat16, 8192)
            flops["tf32"] = flops["fp32"]
        else:
            flops["bf16"] = matmul_flops(device, torch.bfloat16, 256)
        bw = memory_bandwidth(device, 2 * GIB if cuda else (32 if quick else 128) * MIB)
        overheads = layer_overheads(device)
    finally:
        torch.set_num_threads(threads)
    result: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(),
        "device_type": device.type,
        "device_name": torch.cuda.get_device_name(device) if cuda else "cpu (1 thread per process)",
        "torch": torch.__version__,
        "matmul_flops": flops,
        "memory_bandwidth": bw,
        "layer_overhead_s": overheads["plain"],
        "layer_overhead_tp_s": overheads.get("tp", overheads["plain"]),
        "layer_overhead_fsdp_s": overheads.get("fsdp", overheads["plain"]),
    }
    if kernels:
        result["kernels"] = kernels
    gpus = torch.cuda.device_count() if cuda else 0
    if nproc > 1 and (not cuda or gpus >= nproc):
        sizes = [2**k for k in range(12, 23, 2)] if quick else None
        result["collective"] = collective(nproc, "nccl" if cuda else "gloo", sizes, reps=3 if quick else 5)
    path = path or calibration_path()
    atomic_write_json(path, result)
    result["path"] = str(path)
    return result
