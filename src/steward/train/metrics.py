"""Per-step figures (throughput, MFU, memory), metrics.jsonl, and the progress display."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

from steward.io import append_line, atomic_write_text, sync_file
from steward.planning.hardware import gpu_for_device_name


def device_peak_flops(device: torch.device) -> float | None:
    """Dense bf16 peak FLOP/s of `device` from the GPU table (steward/planning/gpus.toml), if it is there
    (None on CPUs and unknown GPUs: no MFU then)."""
    if device.type != "cuda":
        return None
    g = gpu_for_device_name(torch.cuda.get_device_name(device))
    return g.peak_flops["bf16"] if g is not None else None


def peak_memory_bytes(device: torch.device) -> int:
    """Peak allocated accelerator memory, or on the CPU this process's peak resident set size."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


class MetricsWriter:
    """Appends one JSON object per logged step to metrics.jsonl (rank 0 only).

    Each row reaches the OS at once (a crash of the process loses none) and the disk at `sync`, which
    the trainer calls before every checkpoint and at the end: a resume keeps only the rows up to its
    checkpoint, so those are the rows that must survive a crash of the machine. (An fsync per row cost
    ~6 ms per step here, several percent of a small model's step.)"""

    def __init__(self, path: Path | None):
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        if self.path is not None:
            append_line(self.path, json.dumps(record, sort_keys=True), durable=False)

    def sync(self) -> None:
        if self.path is not None:
            sync_file(self.path)

    def truncate_after(self, step: int) -> int:
        """Drop rows after `step` (a resumed run rewrites them; -1 drops every row), atomically.
        Returns the number of rows dropped."""
        if self.path is None or not self.path.is_file():
            return 0
        rows = [line for line in self.path.read_text().splitlines() if line.strip()]
        kept = [line for line in rows if json.loads(line)["step"] <= step]
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        return len(rows) - len(kept)


class Progress:
    """A tqdm bar with ETA on a terminal; plain lines on stderr otherwise (rank 0 only)."""

    def __init__(self, total: int, start: int, enabled: bool, plain_every: int = 10):
        self.enabled = enabled
        self.plain_every = plain_every
        self.bar = None
        self.t0 = time.perf_counter()
        self.start = start
        self.total = total
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, file=sys.stderr)

    def update(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        shown = {"loss": f"{metrics['loss']:.4f}", "tok/s": f"{metrics['tokens_per_s']:.0f}"}
        if "val_loss" in metrics:
            shown["val"] = f"{metrics['val_loss']:.4f}"
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(step - self.bar.n)
        elif step % self.plain_every == 0 or step == self.total or "val_loss" in metrics:
            done = step - self.start
            elapsed = time.perf_counter() - self.t0
            eta = elapsed / done * (self.total - step) if done else 0.0
            text = " ".join(f"{k} {v}" for k, v in shown.items())
            print(f"step {step}/{self.total} {text} eta {eta:.0f}s", file=sys.stderr, flush=True)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
