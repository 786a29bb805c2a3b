"""The energy meter: RAPL read from a fake powercap tree laid out as sysfs lays it out (several packages,
the counter's wraparound), the estimate where nothing can be read (labelled as one), NVML through a fake
module, the per-step figures in metrics.jsonl and their totals in summary.json, and the report's section."""

import json
import os
import time
from pathlib import Path

import pytest
import torch

from steward.config import Energy, load_config
from steward.governance.report import _energy_evidence
from steward.governance.report_html import _energy_section
from steward.train.energy import NvmlReader, RaplReader, Unreadable, build_meter
from steward.train.trainer import Trainer

MAX_RANGE = 262143328850  # an Intel package's max_energy_range_uj


def zone(devices: Path, path: str, name: str, energy: int, max_range: int = MAX_RANGE) -> Path:
    d = devices / path
    d.mkdir(parents=True)
    (d / "name").write_text(name + "\n")
    (d / "energy_uj").write_text(f"{energy}\n")
    (d / "max_energy_range_uj").write_text(f"{max_range}\n")
    (d / "enabled").write_text("1\n")
    return d


def powercap_tree(tmp_path: Path, packages: int = 2, max_range: int = MAX_RANGE) -> Path:
    """/sys/class/powercap: links to /sys/devices/virtual/powercap/intel-rapl/intel-rapl:N (and its
    subzones intel-rapl:N:M), the control type folder, and an MMIO zone repeating package 0."""
    devices = tmp_path / "devices" / "virtual" / "powercap"
    root = tmp_path / "class" / "powercap"
    root.mkdir(parents=True)
    (devices / "intel-rapl").mkdir(parents=True)
    (devices / "intel-rapl" / "enabled").write_text("1\n")
    (root / "intel-rapl").symlink_to(devices / "intel-rapl")
    for n in range(packages):
        pkg = zone(devices, f"intel-rapl/intel-rapl:{n}", f"package-{n}", 1000 * (n + 1), max_range)
        (root / f"intel-rapl:{n}").symlink_to(pkg)
        for m, sub in enumerate(("core", "dram")):
            z = zone(devices, f"intel-rapl/intel-rapl:{n}/intel-rapl:{n}:{m}", sub, 5, max_range)
            (root / f"intel-rapl:{n}:{m}").symlink_to(z)
    mmio = zone(devices, "intel-rapl-mmio/intel-rapl-mmio:0", "package-0", 7, max_range)
    (root / "intel-rapl-mmio:0").symlink_to(mmio)
    return root


def set_uj(root: Path, zone_name: str, value: int) -> None:
    (root / zone_name / "energy_uj").write_text(f"{value}\n")


def test_rapl_sums_the_package_domains_only(tmp_path):
    root = powercap_tree(tmp_path, packages=2)
    r = RaplReader(root)
    assert len(r.paths) == 2 and r.label == "rapl"
    r.start()
    set_uj(root, "intel-rapl:0", 1000 + 2_500_000)
    set_uj(root, "intel-rapl:1", 2000 + 1_000_000)
    set_uj(root, "intel-rapl:0:0", 10**9)  # a subzone (core) is part of the package: not added again
    set_uj(root, "intel-rapl-mmio:0", 10**9)  # the MMIO copy of package 0: not added again
    assert r.read() == 3.5
    set_uj(root, "intel-rapl:1", 2000 + 1_500_000)
    assert r.read() == 4.0


@pytest.mark.parametrize("max_range", [MAX_RANGE, 65532610987])  # Intel's and an AMD Zen package's range
def test_rapl_counter_wraparound(tmp_path, max_range):
    root = powercap_tree(tmp_path, packages=2, max_range=max_range)
    set_uj(root, "intel-rapl:0", max_range - 300_000)
    r = RaplReader(root)
    r.start()
    set_uj(root, "intel-rapl:0", 700_000)  # wrapped: 300,000 to the top, then 700,000 past zero
    assert r.read() == 1.0
    set_uj(root, "intel-rapl:0", 1_700_000)
    set_uj(root, "intel-rapl:1", 2000 + 250_000)
    assert r.read() == 2.25


def test_no_powercap_or_no_package_is_unreadable(tmp_path):
    with pytest.raises(Unreadable, match="no powercap folder"):
        RaplReader(tmp_path / "absent")
    root = powercap_tree(tmp_path, packages=0)
    with pytest.raises(Unreadable, match="no RAPL package domain"):
        RaplReader(root)


def test_unreadable_energy_file_falls_back_to_a_labelled_estimate(tmp_path, monkeypatch):
    root = powercap_tree(tmp_path, packages=1)
    (root / "intel-rapl:0" / "energy_uj").chmod(0o400)
    real = os.open

    def root_only(path, *a, **k):  # root opens anything, so deny as sysfs denies a user since 2020
        if Path(path).name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(os, "open", root_only)
    cfg = Energy(powercap_root=str(root), cpu_watts_per_core=5.0, cpu_watts_source="a named figure")
    meter = build_meter(cfg, torch.device("cpu"))
    assert meter.source == "estimate" and not meter.measured
    assert "permission denied" in meter.basis and "5 W per core (a named figure)" in meter.basis
    meter.start()
    t0 = time.process_time()
    sum(i * i for i in range(200_000))
    used = time.process_time() - t0
    assert meter.read() >= 5.0 * used > 0


def test_readable_rapl_is_measured_and_read_once_per_host(tmp_path):
    root = powercap_tree(tmp_path, packages=2)
    cfg = Energy(powercap_root=str(root))
    meter = build_meter(cfg, torch.device("cpu"))
    assert meter.source == "rapl" and meter.measured
    meter.start()
    set_uj(root, "intel-rapl:0", 1000 + 4_000_000)
    assert meter.lap() == 4.0 and meter.lap() == 0.0
    other = build_meter(cfg, torch.device("cpu"), host_counters=False)  # local rank 1: rank 0 reads RAPL
    other.start()
    assert other.source == "rapl" and other.read() == 0 and "local rank 0" in other.basis


class FakeNvml:
    class NVMLError(Exception):
        pass

    def __init__(self, counter: bool, watts: float = 150.0):
        self.counter, self.mj, self.watts = counter, 10_000, watts

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("gpu", index)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.counter:
            raise self.NVMLError("Not Supported")
        return self.mj

    def nvmlDeviceGetPowerUsage(self, handle):
        return int(self.watts * 1000)


def test_nvml_energy_counter(tmp_path):
    nvml = FakeNvml(counter=True)
    meter = build_meter(Energy(powercap_root=str(tmp_path / "none")), torch.device("cuda", 0), nvml=nvml)
    assert meter.source == "nvml+estimate" and not meter.measured  # the CPU part is estimated here
    meter.start()
    nvml.mj += 2500
    gpu = meter.readers[0]
    assert gpu.read() == 2.5 and "total-energy counter" in gpu.basis


def test_nvml_power_sampling_without_the_counter():
    nvml = FakeNvml(counter=False, watts=150.0)
    gpu = NvmlReader(torch.device("cuda", 0), 0.002, nvml)
    assert gpu.label == "nvml-power" and "power samples every 0.002 s" in gpu.basis
    gpu.start()
    deadline = time.monotonic() + 10
    while gpu.read() < 1e-3 and time.monotonic() < deadline:
        time.sleep(0.01)
    gpu.close()
    assert gpu.read() == pytest.approx(150.0 * gpu.sampled_s, rel=1e-9) and gpu.sampled_s > 0


def test_gpu_without_nvml_is_named_as_not_counted(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pynvml(name, *a, **k):
        if name == "pynvml":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    meter = build_meter(Energy(powercap_root=str(tmp_path / "none")), torch.device("cuda", 0))
    assert meter.source == "estimate" and "GPU energy not counted: nvidia-ml-py is not installed" in meter.basis


DEBUG = [
    "--model.flavor", "debug", "--train.seq_len", "32", "--train.batch_size", "2", "--train.steps", "5",
    "--train.val_every", "2", "--train.val_batches", "1", "--data.max_docs", "200", "--train.device", "cpu",
    "--governance.enabled", "false", "--checkpoint.every", "2", "--train.threads", "1",
]


def test_every_step_has_energy_and_the_summary_totals_them(tmp_path):
    out = tmp_path / "run"
    cfg = load_config(None, [*DEBUG, "--job.out", str(out), "--energy.powercap_root", str(tmp_path / "none"),
                             "--energy.grid_g_per_kwh", "300"])
    summary = Trainer(cfg, callbacks=[]).run()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5]
    assert all(r["energy_source"] == "estimate" and r["energy_j"] > 0 for r in steps)
    e = summary["energy"]
    assert e["energy_j"] == sum(r["energy_j"] for r in steps)  # exactly: the same float64 additions
    assert e["j_per_token"] == e["energy_j"] / summary["tokens_seen"]
    assert e["co2e_g"] == e["energy_j"] / 3.6e6 * 300
    assert e["source"] == "estimate" and e["measured"] is False and "4 W per core" in e["basis"]
    assert json.loads((out / "summary.json").read_text())["energy"] == e


def test_a_resumed_run_totals_every_step_once(tmp_path):
    out = tmp_path / "run"
    flags = [*DEBUG, "--job.out", str(out), "--energy.powercap_root", str(tmp_path / "none")]
    Trainer(load_config(None, [*flags, "--train.steps", "3"]), callbacks=[]).run()  # checkpoints at 2 and 3
    resumed = [*flags, "--train.steps", "6", "--checkpoint.resume", str(out / "checkpoints" / "step-2"),
               "--checkpoint.allow_changes", "train.steps"]
    summary = Trainer(load_config(None, resumed), callbacks=[]).run()  # step 3 again, then 4 to 6
    steps = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert summary["energy"]["energy_j"] == sum(r["energy_j"] for r in steps)


def test_energy_disabled_writes_no_energy_figures(tmp_path):
    out = tmp_path / "run"
    cfg = load_config(None, [*DEBUG, "--job.out", str(out), "--energy.enabled", "false", "--train.steps", "2"])
    summary = Trainer(cfg, callbacks=[]).run()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert not any("energy_j" in r or "energy_source" in r for r in rows)
    assert summary["energy"] is None


def test_report_section_says_measured_or_estimated():
    estimated = {"energy_j": 12.5, "j_per_token": 0.01, "co2e_g": 0.0016, "source": "estimate", "measured": False,
                 "basis": "CPU: estimated as ... (a named figure)", "grid_g_per_kwh": 475.0, "grid_source": "IEA"}
    html = "".join(_energy_section(estimated))
    assert "<h2>Energy</h2>" in html and "Estimated, not measured" in html and "a named figure" in html
    assert _energy_evidence(estimated) == ("partly", "summary.json energy: 12.5 J, estimated (estimate); "
                                                     "report section Energy")
    measured = {**estimated, "source": "nvml+rapl", "measured": True}
    assert "Measured by hardware counters" in "".join(_energy_section(measured))
    assert _energy_evidence(measured)[0] == "yes"
    partly = {**estimated, "source": "nvml+estimate"}
    assert "Partly estimated" in "".join(_energy_section(partly)) and _energy_evidence(partly)[0] == "partly"
    assert _energy_evidence(None)[0] == "no" and "not metered" in "".join(_energy_section(None))


class Fixed:
    """A reader that has used `joules` once started."""

    label, basis = "rapl", "fixed"

    def __init__(self, joules: float):
        self.joules, self.started = joules, False

    def start(self):
        self.started = True

    def read(self):
        return self.joules if self.started else 0.0

    def close(self):
        pass


def _job_laps_worker(rank, port, queue):
    import torch.distributed as dist

    from steward.train.energy import EnergyMeter, JobLaps

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        meter = EnergyMeter([Fixed(1.5 if rank == 0 else 2.25)], ["rapl"], [])
        meter.start()
        laps = JobLaps(meter, torch.device("cpu"))
        laps.lap()
        laps.lap()
        queue.put((rank, laps.take(), laps.take()))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_a_step_energy_is_summed_over_the_ranks():
    from _multiproc import free_ports, spawn

    (port,) = free_ports(1)
    got = sorted(spawn(_job_laps_worker, (port,), nprocs=2))
    assert got == [(0, [3.75, 0.0], []), (1, [3.75, 0.0], [])]


class Counting:
    """A reader whose k-th reading since start is 1 + 2 + ... + k joules: lap k is k J."""

    label, basis = "rapl", "counting"

    def __init__(self):
        self.n = 0

    def start(self):
        self.n = 0

    def read(self):
        self.n += 1
        return self.n * (self.n + 1) / 2

    def close(self):
        pass


def test_laps_are_summed_over_the_ranks_in_one_all_reduce_only_when_taken(monkeypatch, tmp_path):
    import torch.distributed as dist

    from steward.train.energy import EnergyMeter, JobLaps

    reduced = []
    real = dist.all_reduce
    monkeypatch.setattr(dist, "all_reduce", lambda t, *a, **k: reduced.append(t.tolist()) or real(t, *a, **k))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        meter = EnergyMeter([Counting()], ["rapl"], [])
        meter.start()
        laps = JobLaps(meter, torch.device("cpu"))
        for _ in range(3):
            laps.lap()
        assert reduced == []  # reading the meter is local
        assert laps.take() == [1.0, 2.0, 3.0] and reduced == [[1.0, 2.0, 3.0]]
        assert laps.take() == [] and len(reduced) == 1  # nothing pending: no collective
    finally:
        dist.destroy_process_group()


def test_with_log_every_a_written_row_has_its_own_steps_joules_and_the_total_every_steps(monkeypatch, tmp_path):
    """The laps are summed where a row is written and before each checkpoint; a row's energy_j is its
    own step's (not the steps since the previous row's), and the total counts every step once."""
    import steward.train.trainer as loop
    from steward.train.energy import EnergyMeter, JobLaps

    monkeypatch.setattr(loop, "build_meter", lambda *a, **k: EnergyMeter([Counting()], ["rapl"], []))
    taken = []
    take = JobLaps.take
    monkeypatch.setattr(JobLaps, "take", lambda self: taken.append(take(self)) or taken[-1])
    out = tmp_path / "run"
    cfg = load_config(None, [*DEBUG, "--job.out", str(out), "--train.val_every", "0", "--train.log_every", "3"])
    summary = Trainer(cfg, callbacks=[]).run()  # checkpoints at 2, 4 and 5; rows at 3 and 5
    rows = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert [(r["step"], r["energy_j"], r["energy_source"]) for r in rows] == [(3, 3.0, "rapl"), (5, 5.0, "rapl")]
    assert [t for t in taken if t] == [[1.0, 2.0], [3.0], [4.0], [5.0]]
    assert summary["energy"]["energy_j"] == 15.0
    state = json.loads((out / "checkpoints" / "step-2" / "trainer_state.json").read_text())
    assert state["figures"]["energy_j"] == 3.0  # the checkpoint's total covers steps 1 and 2
