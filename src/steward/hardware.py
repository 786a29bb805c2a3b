"""GPU figures in one place: gpus.toml next to this file, every figure with its source.

The memory planner (`memory.profile.GPU_SPECS`, `steward memplan --gpu`), the MFU of the training
metrics (`train.metrics.device_peak_flops`) and the cluster presets (`parallel/clusters.toml`, whose
devices say `gpu = "h100"`) all read this table, so a figure is corrected once. No torch import here:
the CLI reads the GPU names at start-up.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steward.errors import StewardError
from steward.io import tomllib

GPUS_FILE = Path(__file__).with_name("gpus.toml")
MIB = 2**20


class HardwareError(StewardError):
    """A GPU table entry that cannot be used; the message names the entry and the field."""


@dataclass(frozen=True)
class GPU:
    key: str
    """The table's name for it (`steward memplan --gpu KEY`, `gpu = "KEY"` in a cluster file)."""
    name: str
    match: tuple[str, ...]
    """Substrings of torch.cuda.get_device_name() that identify it."""
    peak_flops: dict[str, float]
    """Dense peak FLOP/s per dtype name (bf16 always; fp16, tf32, fp32 where known)."""
    memory_bytes: int | None = None
    memory_bandwidth: float | None = None
    """Device memory bandwidth, bytes/s."""
    host_bandwidth: float | None = None
    """Host link bandwidth per direction, bytes/s (what offload crosses twice)."""
    source: str = ""

    @property
    def plannable(self) -> bool:
        """Whether the memory planner has every figure it needs for this GPU."""
        return None not in (self.memory_bytes, self.memory_bandwidth, self.host_bandwidth)


def _positive(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise HardwareError(f"{where}: expected a number > 0, got {value!r}")
    return float(value)


def gpu_from_dict(key: str, t: dict[str, Any], origin: str = "gpus.toml") -> GPU:
    where = f"{origin} [{key}]"
    known = {"name", "match", "memory_mib", "memory_bandwidth_gb_s", "host_link_gb_s", "peak_tflops", "source"}
    if unknown := sorted(set(t) - known):
        raise HardwareError(f"{where} {unknown[0]}: unknown key (allowed: {', '.join(sorted(known))})")
    match = t.get("match")
    if not isinstance(match, list) or not match or not all(isinstance(m, str) and m for m in match):
        raise HardwareError(f"{where} match: expected a list of device-name substrings, got {match!r}")
    peaks = t.get("peak_tflops")
    if not isinstance(peaks, dict) or "bf16" not in peaks:
        raise HardwareError(f"{where} peak_tflops: expected a table with at least bf16, e.g. {{ bf16 = 989 }}")

    def opt(field: str, scale: float) -> float | None:
        return _positive(f"{where} {field}", t[field]) * scale if field in t else None

    mem = opt("memory_mib", MIB)
    return GPU(
        key=key,
        name=str(t.get("name") or key),
        match=tuple(match),
        peak_flops={str(k): _positive(f"{where} peak_tflops.{k}", v) * 1e12 for k, v in peaks.items()},
        memory_bytes=int(mem) if mem is not None else None,
        memory_bandwidth=opt("memory_bandwidth_gb_s", 1e9),
        host_bandwidth=opt("host_link_gb_s", 1e9),
        source=str(t.get("source", "")),
    )


@functools.cache
def gpus() -> dict[str, GPU]:
    """Every GPU of gpus.toml, by key."""
    data = tomllib.loads(GPUS_FILE.read_text())
    return {key: gpu_from_dict(key, table) for key, table in data.items()}


def plannable_gpus() -> dict[str, GPU]:
    """The GPUs `steward memplan --gpu` can plan for."""
    return {k: g for k, g in gpus().items() if g.plannable}


def gpu_for_device_name(device_name: str) -> GPU | None:
    """The table's GPU for a torch device name ("NVIDIA H100 80GB HBM3"), by the longest matching
    substring, so that "H100 PCIe" wins over "H100" and "L40S" over "L4"; None if unknown."""
    best: tuple[int, GPU] | None = None
    for g in gpus().values():
        for m in g.match:
            if m in device_name and (best is None or len(m) > best[0]):
                best = (len(m), g)
    return best[1] if best else None
