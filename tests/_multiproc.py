"""The multi-process harness of the tests (CPU, gloo on loopback): free ports, workers spawned
with torch.multiprocessing, and a script started once per rank with torch.distributed's
environment. Every wait has a deadline; at the deadline the workers are killed."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest


def free_ports(n: int = 1) -> tuple[int, ...]:
    """n distinct free ports on 127.0.0.1 (the sockets are held open together, so none repeats)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return tuple(s.getsockname()[1] for s in socks)
    finally:
        for s in socks:
            s.close()


def _run_and_leave(rank: int, fn: Callable[..., None], args: tuple, queue) -> None:
    """A spawned worker: fn(rank, *args, queue); after it returns, collect what still holds a process group
    (hooks' reference cycles), flush the queue and leave through os._exit, so no gloo thread meets the
    interpreter's teardown (there it can abort the process with SIGABRT after a worker that passed)."""
    import gc

    fn(rank, *args, queue)
    gc.collect()
    queue.close()
    queue.join_thread()
    os._exit(0)


def spawn(fn: Callable[..., None], args: tuple, nprocs: int, timeout: float = 300.0) -> list[Any]:
    """Run fn(rank, *args, queue) in `nprocs` spawned processes and wait for all of them: a worker's
    exception is raised here, and after `timeout` seconds they are killed and the test fails.
    Returns what the workers put on `queue`, one item per worker, in the order they arrived."""
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").Queue()
    procs = mp.start_processes(_run_and_leave, args=(fn, args, queue), nprocs=nprocs, start_method="spawn",
                               join=False)
    deadline = time.monotonic() + timeout
    while not procs.join(timeout=5):  # raises if a worker failed
        if time.monotonic() > deadline:
            for p in procs.processes:
                p.kill()
            pytest.fail(f"the {nprocs} workers did not finish within {timeout:.0f} s")
    return [queue.get(timeout=5) for _ in range(nprocs)]


def run_ranks(argv: list[str], world: int, timeout: float = 900.0) -> list[tuple[int, str]]:
    """Start `argv` once per rank of a one-node job of `world` processes (RANK, LOCAL_RANK, WORLD_SIZE,
    LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT set, as torchrun would) and wait for all of them;
    (exit code, output) per rank. A rank still running after `timeout` seconds: all are killed and
    subprocess.TimeoutExpired is raised."""
    (port,) = free_ports(1)
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                   LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    return [(p.returncode, log) for p, log in zip(procs, logs)]
