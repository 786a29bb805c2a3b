"""The energy a run used: GPU energy from NVML, CPU package energy from RAPL, else an estimate that
says it is one.

- GPU: NVML's total-energy counter (`nvmlDeviceGetTotalEnergyConsumption`, millijoules since the
  driver loaded; Volta and later) through nvidia-ml-py, imported only on a CUDA run. A GPU without the
  counter is sampled instead (`nvmlDeviceGetPowerUsage` every energy.sample_interval_s on a thread,
  integrated with the trapezoid rule).
- CPU: RAPL package energy through /sys/class/powercap (energy.powercap_root): every package domain
  `intel-rapl:N` (AMD Zen CPUs appear in the same layout, through the same driver, since Linux 5.8).
  The counter wraps at `max_energy_range_uj`; a reading below the previous one adds that range.
  Subzones (`intel-rapl:N:M`: core, uncore, dram) are parts of or beside the package and are not added;
  `intel-rapl-mmio:N` repeats a package counter and is skipped. The counter is the whole host's (every
  process on it), so one process per host (local rank 0) reads it. Since CVE-2020-8694 most hosts let
  only root read `energy_uj`; then, as where there is no powercap at all, the meter falls back to
- the estimate: this process's CPU time x energy.cpu_watts_per_core, labelled `estimate` with the
  figure's source (energy.cpu_watts_source), never as measured.

Why these small readers rather than CodeCarbon 3.3.2 or Zeus 0.16: CodeCarbon measures on a background
scheduler (every 15 s by default) into an emissions record for the whole run, not per optimizer step,
and needs pandas and more; Zeus's `ZeusMonitor` does measure windows from the same NVML counter and
RAPL files, but brings its own dependencies and gives nothing where no counter can be read, where we
need the labelled estimate. A reading here is one NVML call, or one pread per package, per
step (`steward bench trainer --energy` measures what that costs).

Use outside the trainer (e.g. a benchmark): `meter = build_meter(Energy(), device)`, `meter.start()`,
then `meter.read()` (joules since start) or `meter.lap()` (joules since the previous lap; `JobLaps`
keeps a rank's laps and sums them over the ranks when asked), with
`meter.source` ('nvml', 'nvml-power', 'rapl', 'estimate', joined by '+'), `meter.measured` and
`meter.basis` (what was read, or the estimate's figure and source).
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import torch

from steward.config import Energy

_PACKAGE_ZONE = re.compile(r"intel-rapl:(\d+)")


class Unreadable(Exception):
    """A reader cannot read its counter here; the message says why (shown in the meter's basis)."""


class Reader(Protocol):
    label: str
    basis: str

    def start(self) -> None: ...

    def read(self) -> float:
        """Joules since start()."""
        ...

    def close(self) -> None: ...


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError) as e:
        raise Unreadable(f"{path}: {e}") from e


class RaplReader:
    """CPU package energy: the sum over the package domains under `root`, wraparound included. The
    energy_uj files stay open: a reading is one pread per package (sysfs renders the value afresh at
    offset 0), a few microseconds."""

    label = "rapl"

    def __init__(self, root: str | Path):
        root = Path(root)
        if not root.is_dir():
            raise Unreadable(f"no powercap folder {root}")
        zones = sorted((p for p in root.iterdir() if _PACKAGE_ZONE.fullmatch(p.name)),
                       key=lambda p: int(p.name.split(":")[1]))
        packages: list[tuple[Path, int]] = []
        for zone in zones:
            try:
                name = (zone / "name").read_text().strip()
            except OSError as e:
                raise Unreadable(f"{zone / 'name'}: {e}") from e
            if name.startswith("package"):
                packages.append((zone / "energy_uj", _read_int(zone / "max_energy_range_uj")))
        if not packages:
            raise Unreadable(f"no RAPL package domain (intel-rapl:N named package-N) under {root}")
        self.fds: list[int] = []
        try:
            for path, _ in packages:
                self.fds.append(os.open(path, os.O_RDONLY))
        except PermissionError as e:
            self.close()
            raise Unreadable(f"{e.filename}: permission denied (root only since CVE-2020-8694)") from e
        except OSError as e:
            self.close()
            raise Unreadable(f"{e.filename}: {e.strerror}") from e
        self.paths = [path for path, _ in packages]
        self.max_ranges = [max_range for _, max_range in packages]
        self.last = self._now()  # an unreadable counter fails here, not in the middle of training
        self.total_uj = 0
        self.basis = (f"CPU: RAPL package energy of {len(packages)} package domain(s) under {root} "
                      "(the whole host: every process on it)")

    def _now(self) -> list[int]:
        values = []
        for fd, path in zip(self.fds, self.paths):
            try:
                values.append(int(os.pread(fd, 32, 0)))
            except (OSError, ValueError) as e:
                raise Unreadable(f"{path}: {e}") from e
        return values

    def start(self) -> None:
        self.last = self._now()
        self.total_uj = 0

    def read(self) -> float:
        now = self._now()
        for i, value in enumerate(now):
            delta = value - self.last[i]
            if delta < 0:  # the counter wrapped past max_energy_range_uj
                delta += self.max_ranges[i]
            self.total_uj += delta
        self.last = now
        return self.total_uj / 1e6

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


class NvmlReader:
    """One GPU's energy from NVML: the total-energy counter, or integrated power samples on a GPU
    without it. `nvml` is the pynvml module (a test hands in a fake)."""

    def __init__(self, device: torch.device, interval_s: float, nvml: Any = None):
        if nvml is None:
            try:
                import pynvml as nvml
            except ImportError as e:
                raise Unreadable("nvidia-ml-py is not installed (pip install nvidia-ml-py)") from e
        self.nvml, self.interval_s = nvml, interval_s
        index = device.index if device.index is not None else 0
        try:
            nvml.nvmlInit()
            self.handle = _nvml_handle(nvml, index)
        except nvml.NVMLError as e:
            raise Unreadable(f"NVML: {e}") from e
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            self.label = "nvml"
            self.basis = f"GPU {index}: NVML total-energy counter"
        except nvml.NVMLError:
            self.label = "nvml-power"
            self.basis = (f"GPU {index}: NVML power samples every {interval_s:g} s, integrated (no energy "
                          "counter on this GPU)")
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.start_mj = 0
        self.sampled_j = self.sampled_s = 0.0

    def _power_w(self) -> float:
        return self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0

    def _sample(self) -> None:
        t, p = time.perf_counter(), self._power_w()
        while not self._stop.wait(self.interval_s):
            t2, p2 = time.perf_counter(), self._power_w()
            self.sampled_j += (p + p2) / 2 * (t2 - t)
            self.sampled_s += t2 - t
            t, p = t2, p2

    def start(self) -> None:
        if self.label == "nvml":
            self.start_mj = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            return
        self.close()
        self._stop.clear()
        self.sampled_j = self.sampled_s = 0.0
        self._thread = threading.Thread(target=self._sample, name="steward-gpu-power", daemon=True)
        self._thread.start()

    def read(self) -> float:
        if self.label == "nvml":
            return (self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) - self.start_mj) / 1000.0
        return self.sampled_j

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None


def _nvml_handle(nvml: Any, index: int) -> Any:
    """NVML's handle of torch's CUDA device `index`: by UUID, since CUDA_VISIBLE_DEVICES renumbers the
    devices torch sees but not NVML's; by index where torch gives no UUID or NVML does not know it."""
    uuid = None
    if torch.cuda.is_available():
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    if uuid is not None:
        try:
            return nvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
        except nvml.NVMLError:
            pass
    return nvml.nvmlDeviceGetHandleByIndex(index)


class CpuTimeEstimate:
    """An estimate, not a measurement: this process's CPU time (all its threads) x watts per core; in a
    job, every process adds its own."""

    label = "estimate"

    def __init__(self, watts_per_core: float, source: str, why: str):
        self.watts = watts_per_core
        self.basis = (f"CPU: estimated as the training processes' CPU time x {watts_per_core:g} W per core ({source}); "
                      f"not measured: {why}")
        self.t0 = time.process_time()

    def start(self) -> None:
        self.t0 = time.process_time()

    def read(self) -> float:
        return (time.process_time() - self.t0) * self.watts

    def close(self) -> None:
        pass


class EnergyMeter:
    """The sum of its readers: joules since start(). `source` names every part ('nvml+rapl',
    'estimate', ...); `measured` is False as soon as one part is an estimate; `basis` says what each
    part reads (or the estimate's figure and its source) and what is not counted."""

    def __init__(self, readers: list[Reader], labels: list[str], notes: list[str]):
        self.readers = readers
        self.source = "+".join(labels)
        self.measured = "estimate" not in labels
        self.basis = "; ".join([*(r.basis for r in readers), *notes])
        self.last = 0.0

    def start(self) -> None:
        for r in self.readers:
            r.start()
        self.last = 0.0

    def read(self) -> float:
        return sum(r.read() for r in self.readers)

    def lap(self) -> float:
        """Joules since the previous lap (or start)."""
        now = self.read()
        delta, self.last = now - self.last, now
        return delta

    def close(self) -> None:
        for r in self.readers:
            r.close()


def build_meter(cfg: Energy, device: torch.device, host_counters: bool = True, nvml: Any = None) -> EnergyMeter:
    """The meter for a process training on `device`. `host_counters`: this process reads the host-wide
    RAPL counter (one process per host does: local rank 0); the others on a host where RAPL is readable
    add nothing for the CPU, and where it is not, each estimates its own CPU time."""
    readers: list[Reader] = []
    labels: list[str] = []
    notes: list[str] = []
    if device.type == "cuda":
        try:
            gpu = NvmlReader(device, cfg.sample_interval_s, nvml)
            readers.append(gpu)
            labels.append(gpu.label)
        except Unreadable as e:
            notes.append(f"GPU energy not counted: {e}")
    try:
        rapl = RaplReader(cfg.powercap_root)
        labels.append(rapl.label)
        if host_counters:
            readers.append(rapl)
        else:
            notes.append("CPU: the host's RAPL counter is read by local rank 0")
    except Unreadable as e:
        estimate = CpuTimeEstimate(cfg.cpu_watts_per_core, cfg.cpu_watts_source, str(e))
        readers.append(estimate)
        labels.append(estimate.label)
    return EnergyMeter(readers, labels, notes)


class JobLaps:
    """The meter's laps on this rank, summed over the job's ranks only when `take` is called: one
    all-reduce for every lap since the previous take, instead of one per step. Every rank must call
    `take` at the same points (it is a collective when distributed): the trainer takes at each step
    whose metrics row is written, before a checkpoint and at the end."""

    def __init__(self, meter: EnergyMeter, device: torch.device):
        self.meter, self.device = meter, device
        self.pending: list[float] = []

    def lap(self) -> None:
        """Read the meter: this rank's joules since its previous reading, kept here (no collective)."""
        self.pending.append(self.meter.lap())

    def take(self) -> list[float]:
        """Every pending lap summed over the ranks, in order (each the sum the steps' own all-reduce
        would give); none is pending afterwards."""
        laps, self.pending = self.pending, []
        if laps and torch.distributed.is_available() and torch.distributed.is_initialized():
            summed = torch.tensor(laps, dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(summed, op=torch.distributed.ReduceOp.SUM)
            laps = summed.tolist()
        return laps


def energy_summary(meter: EnergyMeter, energy_j: float, tokens: int, cfg: Energy) -> dict[str, Any]:
    """summary.json's energy figures: the total (the sum of the steps' energy_j), per token, and CO2e."""
    return {
        "energy_j": energy_j,
        "j_per_token": energy_j / tokens if tokens else None,
        "co2e_g": energy_j / 3.6e6 * cfg.grid_g_per_kwh,
        "source": meter.source,
        "measured": meter.measured,
        "basis": meter.basis,
        "grid_g_per_kwh": cfg.grid_g_per_kwh,
        "grid_source": cfg.grid_source,
        "window": "the training steps, each with its validation pass and the checkpoint saved before it; "
                  "set-up, the first validation and the final checkpoint are outside",
    }
