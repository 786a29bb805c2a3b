"""The device, and GPU figures in one place: gpus.toml next to this file, every figure with its source.

`Device` is the one description of an accelerator (or a CPU worker) that the layout planner, the
simulator, the rematerialization planner and the cluster presets share. The GPU table's entries are
Devices; a cluster preset's device is its GPU's entry with the preset's own figures
(`topology.cluster_from_dict`). The memory planner (`steward memplan --gpu`), the MFU of the training
metrics (`train.metrics.device_peak_flops`) and the cluster presets (`clusters.toml`, whose devices
say `gpu = "h100"`) all read this table, so a figure is corrected once. No torch import here: the CLI
reads the GPU names at start-up.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steward.errors import StewardError
from steward.io import tomllib
from steward.planning.units import GB, MIB, TFLOPS

GPUS_FILE = Path(__file__).with_name("gpus.toml")


class HardwareError(StewardError):
    """A GPU table entry that cannot be used, or a figure a device lacks; the message names the field."""


@dataclass(frozen=True, kw_only=True)
class Device:
    """One device: bytes, bytes/s and FLOP/s. Figures a source does not give are None."""

    name: str
    peak_flops: dict[str, float]
    """Dense peak FLOP/s per dtype name (bf16 always for a GPU; fp16, tf32, fp32 where known)."""
    memory_bytes: int | None = None
    memory_bandwidth: float | None = None
    """Device memory bandwidth, bytes/s."""
    host_bandwidth: float | None = None
    """Host link bandwidth per direction, bytes/s (what offload crosses twice)."""
    kind: str = "cuda"
    """'cuda' or 'cpu'."""
    matmul_efficiency: float = 1.0
    """Fraction of peak a large matrix product reaches."""
    match: tuple[str, ...] = ()
    """Substrings of torch.cuda.get_device_name() that identify it."""
    key: str = ""
    """Its gpus.toml entry (`steward memplan --gpu KEY`, `gpu = "KEY"` in a cluster file); '' when a
    cluster file gives every figure itself."""
    source: str = ""
    layer_overhead: dict[str, float] = field(default_factory=dict)
    """Seconds of framework work per layer per micro-batch (forward + backward) beyond the arithmetic:
    'plain', 'tp' (under tensor parallel), 'fsdp' (under FSDP2). Calibration replaces them."""
    kernels: dict[str, float] = field(default_factory=dict)
    """This host's kernel figures from calibration (`calibrate.kernel_figures`): 'gemm_half' (the GEMM
    intensity at half the large-matmul rate), 'attention' (fused attention's rate as a fraction of it),
    'elementwise_bandwidth' (bytes/s element-wise kernels reach). Empty: none measured."""
    trainer_fit: dict[str, float] = field(default_factory=dict)
    """This host's constants fitted on real trainer steps (`hostfit`; `cost.with_trainer_fit` reads them):
    'gemm', 'layer_overhead_s', 'step_overhead_s', 'optimizer_bytes_per_param', 'step_overhead_tp_s',
    'step_overhead_fsdp_s'. Empty: none fitted."""

    @property
    def plannable(self) -> bool:
        """Whether the memory planner has every figure it needs for this device."""
        return None not in (self.memory_bytes, self.memory_bandwidth, self.host_bandwidth)

    def flops(self, dtype: str) -> float:
        """Achievable matmul FLOP/s in `dtype` (peak times matmul efficiency)."""
        if dtype not in self.peak_flops:
            raise HardwareError(
                f"device.peak_tflops: no figure for {dtype!r} on {self.name} (has {', '.join(self.peak_flops)})"
            )
        return self.peak_flops[dtype] * self.matmul_efficiency


def _positive(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise HardwareError(f"{where}: expected a number > 0, got {value!r}")
    return float(value)


def gpu_from_dict(key: str, t: dict[str, Any], origin: str = "gpus.toml") -> Device:
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
    return Device(
        key=key,
        name=str(t.get("name") or key),
        match=tuple(match),
        peak_flops={str(k): _positive(f"{where} peak_tflops.{k}", v) * TFLOPS for k, v in peaks.items()},
        memory_bytes=int(mem) if mem is not None else None,
        memory_bandwidth=opt("memory_bandwidth_gb_s", GB),
        host_bandwidth=opt("host_link_gb_s", GB),
        source=str(t.get("source", "")),
    )


@functools.cache
def gpus() -> dict[str, Device]:
    """Every GPU of gpus.toml, by key."""
    data = tomllib.loads(GPUS_FILE.read_text())
    return {key: gpu_from_dict(key, table) for key, table in data.items()}


def plannable_gpus() -> dict[str, Device]:
    """The GPUs `steward memplan --gpu` can plan for."""
    return {k: g for k, g in gpus().items() if g.plannable}


def gpu_for_device_name(device_name: str) -> Device | None:
    """The table's GPU for a torch device name ("NVIDIA H100 80GB HBM3"), by the longest matching
    substring, so that "H100 PCIe" wins over "H100" and "L40S" over "L4"; None if unknown."""
    best: tuple[int, Device] | None = None
    for g in gpus().values():
        for m in g.match:
            if m in device_name and (best is None or len(m) > best[0]):
                best = (len(m), g)
    return best[1] if best else None
