"""What the cluster is: nodes, devices per node, each device's memory and peak FLOP/s, and the two
link classes a collective can cross (inside a node, between nodes).

Presets live in clusters.toml next to this file, every figure with its source; a GPU's own figures
come from the GPU table (`hardware`). A user cluster file is TOML with the keys of one preset at the
top level. `discover()` describes the running job (world size, processes per node, device
properties, `nvidia-smi topo -m`) and `discover_cluster()` turns that into a `Cluster`, with figures
from `steward plan --calibrate` where they exist. Which rank runs on which node is the runtime's
question (`parallel.mesh.node_of_rank`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import platform
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steward.errors import StewardError
from steward.io import tomllib
from steward.planning.hardware import Device, gpu_for_device_name, gpus
from steward.planning.units import GB, GIB, KIB, TFLOPS, US

PRESETS_FILE = Path(__file__).with_name("clusters.toml")


class ClusterError(StewardError):
    """A cluster file or preset that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Link:
    """One class of link a collective crosses. Times follow the alpha-beta model."""

    name: str
    bandwidth: float
    """Bytes/s per device, one direction (the line rate)."""
    latency: float
    """Seconds per ring step (alpha)."""
    base_latency: float = 0.0
    """Seconds added once per collective (launch and synchronisation)."""
    efficiency: float = 1.0
    """Fraction of `bandwidth` collectives reach."""
    source: str = ""

    @property
    def effective_bandwidth(self) -> float:
        return self.bandwidth * self.efficiency


@dataclass(frozen=True)
class Cluster:
    name: str
    nodes: int
    devices_per_node: int
    device: Device
    intra: Link
    inter: Link
    description: str = ""
    source: str = ""
    sources: dict[str, str] = field(default_factory=dict)
    """Where each assumption or figure comes from, by field."""
    cores_per_node: int = 0
    """CPU clusters discovered here: the cores the device processes of a node share (0: not shared)."""

    @property
    def world_size(self) -> int:
        return self.nodes * self.devices_per_node

    def with_nodes(self, nodes: int) -> Cluster:
        if nodes < 1:
            raise ClusterError(f"--nodes: must be >= 1, got {nodes}")
        return dataclasses.replace(self, nodes=nodes)

    def link(self, group_size: int, stride: int) -> Link:
        """The link a collective over `group_size` ranks spaced `stride` apart in the rank order crosses.

        Ranks fill a node before the next (see mesh.placement): a group stays inside a node when its
        span group_size * stride fits in devices_per_node and the node size is a multiple of it."""
        span = group_size * stride
        if group_size <= 1 or (span <= self.devices_per_node and self.devices_per_node % span == 0):
            return self.intra
        return self.inter

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["world_size"] = self.world_size
        dev = self.device
        d["device"] = {
            "name": dev.name, "kind": dev.kind, "memory_bytes": dev.memory_bytes, "peak_flops": dict(dev.peak_flops),
            "memory_bandwidth": dev.memory_bandwidth, "matmul_efficiency": dev.matmul_efficiency,
            "match": list(dev.match), "gpu": dev.key, "source": dev.source, "layer_overhead": dict(dev.layer_overhead),
        }
        return d


# ---- loading -------------------------------------------------------------------------------------


def _num(where: str, table: dict[str, Any], key: str, *, positive: bool = True, default: Any = None) -> float:
    if key not in table:
        if default is not None:
            return float(default)
        raise ClusterError(f"{where}{key}: missing (a number)")
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ClusterError(f"{where}{key}: expected a number, got {value!r}")
    if positive and value <= 0:
        raise ClusterError(f"{where}{key}: must be > 0, got {value}")
    if not positive and value < 0:
        raise ClusterError(f"{where}{key}: must be >= 0, got {value}")
    return float(value)


def _int(where: str, table: dict[str, Any], key: str, default: int | None = None) -> int:
    if key not in table and default is not None:
        return default
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ClusterError(f"{where}{key}: expected a positive integer, got {value!r}")
    return value


def _str(where: str, table: dict[str, Any], key: str, default: str | None = None) -> str:
    if key not in table and default is not None:
        return default
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ClusterError(f"{where}{key}: expected a non-empty string, got {value!r}")
    return value


def _table(where: str, table: dict[str, Any], key: str) -> dict[str, Any]:
    value = table.get(key)
    if not isinstance(value, dict):
        raise ClusterError(f"{where}{key}: missing table [{key}]")
    return value


def _link(where: str, t: dict[str, Any]) -> Link:
    eff = _num(where, t, "efficiency", default=1.0)
    if eff > 1:
        raise ClusterError(f"{where}efficiency: must be in (0, 1], got {eff}")
    return Link(
        name=_str(where, t, "name"),
        bandwidth=_num(where, t, "bandwidth_gb_s") * GB,
        latency=_num(where, t, "latency_us", positive=False) * US,
        base_latency=_num(where, t, "base_latency_us", positive=False, default=0) * US,
        efficiency=eff,
        source=_str(where, t, "source", default=""),
    )


def _device(dpre: str, d: dict[str, Any]) -> Device:
    """The [device] table of a cluster: a GPU of the table (`gpu = "h100"`, keys given here override its
    figures) or every figure given here; errors start with `dpre`."""
    gpu = None
    if "gpu" in d:  # the GPU's own figures from steward/gpus.toml; keys given here override them
        key = _str(dpre, d, "gpu")
        gpu = gpus().get(key)
        if gpu is None:
            raise ClusterError(f"{dpre}gpu: unknown GPU {key!r}; choose one of {', '.join(gpus())} "
                               "(steward/gpus.toml), or give name, memory_gib, memory_bandwidth_gb_s and peak_tflops")
    peaks = d.get("peak_tflops")
    if peaks is None and gpu is not None:
        peak = dict(gpu.peak_flops)
    elif not isinstance(peaks, dict) or not peaks:
        raise ClusterError(f"{dpre}peak_tflops: expected a table of dtype = TFLOP/s, e.g. {{ bf16 = 312 }}")
    else:
        peak = {str(k): _num(f"{dpre}peak_tflops.", peaks, k) * TFLOPS for k in peaks}
    eff = _num(dpre, d, "matmul_efficiency", default=1.0)
    if eff > 1:
        raise ClusterError(f"{dpre}matmul_efficiency: must be in (0, 1], got {eff}")
    kind = _str(dpre, d, "kind", default="cuda")
    if kind not in ("cuda", "cpu"):
        raise ClusterError(f"{dpre}kind: must be 'cuda' or 'cpu', got {kind!r}")
    match = d.get("match", list(gpu.match) if gpu is not None else [])
    if not isinstance(match, list) or not all(isinstance(m, str) for m in match):
        raise ClusterError(f"{dpre}match: expected a list of strings, got {match!r}")
    overheads = d.get("layer_overhead_us", {})
    if not isinstance(overheads, dict) or not set(overheads) <= {"plain", "tp", "fsdp"}:
        raise ClusterError(f"{dpre}layer_overhead_us: expected a table with plain, tp and fsdp in microseconds")

    def from_gpu(key: str, figure: float | None, scale: float) -> float:
        if key in d or gpu is None:
            return _num(dpre, d, key) * scale
        if figure is None:
            raise ClusterError(f"{dpre}{key}: missing (steward/gpus.toml has no such figure for {gpu.key!r})")
        return figure

    return Device(
        name=_str(dpre, d, "name", default=gpu.name if gpu is not None else None),
        kind=kind,
        memory_bytes=int(from_gpu("memory_gib", gpu.memory_bytes if gpu else None, GIB)),
        peak_flops=peak,
        memory_bandwidth=from_gpu("memory_bandwidth_gb_s", gpu.memory_bandwidth if gpu else None, GB),
        host_bandwidth=gpu.host_bandwidth if gpu is not None else None,
        matmul_efficiency=eff,
        match=tuple(match),
        key=gpu.key if gpu is not None else "",
        source=_str(dpre, d, "source", default=gpu.source if gpu is not None else ""),
        layer_overhead={k: _num(f"{dpre}layer_overhead_us.", overheads, k, positive=False) * US for k in overheads},
    )


def cluster_from_dict(name: str, data: dict[str, Any], origin: str) -> Cluster:
    """Build a Cluster from one preset's table; errors name `origin` and the field."""
    pre = f"{origin}: "
    known = {"name", "description", "nodes", "devices_per_node", "source", "device", "intra", "inter"}
    for key in data:
        if key not in known:
            raise ClusterError(f"{pre}{key}: unknown key (allowed: {', '.join(sorted(known))})")
    d = _table(pre, data, "device")
    device = _device(f"{origin}: device.", d)
    intra = _link(f"{origin}: intra.", _table(pre, data, "intra"))
    inter = _link(f"{origin}: inter.", _table(pre, data, "inter"))
    sources = {
        "device": device.source,
        "device.matmul_efficiency": str(d.get("matmul_efficiency_source", "")),
        "device.layer_overhead": str(d.get("layer_overhead_source", "")),
        "intra": intra.source,
        "intra.efficiency": str(data["intra"].get("efficiency_source", "")),
        "inter": inter.source,
        "inter.efficiency": str(data["inter"].get("efficiency_source", "")),
    }
    return Cluster(
        name=_str(pre, data, "name", default=name),
        nodes=_int(pre, data, "nodes", default=1),
        devices_per_node=_int(pre, data, "devices_per_node"),
        device=device,
        intra=intra,
        inter=inter,
        description=_str(pre, data, "description", default=""),
        source=_str(pre, data, "source", default=""),
        sources={k: v for k, v in sources.items() if v},
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ClusterError(f"cluster file {path}: not valid TOML ({e})") from None
    except OSError as e:
        raise ClusterError(f"cluster file {path}: cannot be read ({e.strerror})") from None


def presets() -> dict[str, Cluster]:
    """The shipped presets by name (clusters.toml, parsed once per process; Cluster is frozen)."""
    return dict(_presets())


@functools.cache
def _presets() -> dict[str, Cluster]:
    data = _read_toml(PRESETS_FILE)
    return {name: cluster_from_dict(name, table, f"preset {name}") for name, table in data.items()}


def load_cluster(spec: str, nodes: int | None = None) -> Cluster:
    """A preset name or the path of a cluster TOML file; `nodes` replaces its node count."""
    table = presets()
    if spec in table:
        cluster = table[spec]
    else:
        path = Path(spec)
        if not path.is_file():
            raise ClusterError(
                f"--cluster: {spec!r} is neither a preset ({', '.join(table)}) nor a cluster file"
            )
        cluster = cluster_from_dict(path.stem, _read_toml(path), f"cluster file {path}")
    return cluster.with_nodes(nodes) if nodes is not None else cluster


# ---- discovery -----------------------------------------------------------------------------------


def _host_memory_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * KIB  # kB in /proc/meminfo are KiB
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def parse_nvidia_smi_topo(text: str) -> dict[str, Any]:
    """The GPU-to-GPU part of `nvidia-smi topo -m`: {'gpus': [...], 'links': {'GPU0-GPU1': 'NV12', ...}}."""
    rows = [line.split() for line in text.splitlines() if line.strip()]
    if not rows:
        return {"gpus": [], "links": {}}
    header = [h for h in rows[0] if h.startswith("GPU")]
    links: dict[str, str] = {}
    gpus = []
    for row in rows[1:]:
        if not row or not row[0].startswith("GPU") or not row[0][3:].isdigit():
            continue
        gpus.append(row[0])
        for j, peer in enumerate(header):
            if j + 1 < len(row) and peer != row[0]:
                links[f"{row[0]}-{peer}"] = row[j + 1]
    return {"gpus": gpus, "links": links}


def _nvidia_smi_topo() -> dict[str, Any] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "topo", "-m"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    parsed = parse_nvidia_smi_topo(out)
    parsed["raw"] = out
    return parsed


def discover() -> dict[str, Any]:
    """Facts about the job this process belongs to (or would start on this host)."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "0") or 0)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0)
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count() or 1,
        "host_memory_bytes": _host_memory_bytes(),
        "launched": world > 0,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            device_type="cuda",
            device_count=torch.cuda.device_count(),
            device_name=props.name,
            device_memory_bytes=int(props.total_memory),
            multiprocessors=props.multi_processor_count,
            compute_capability=f"{props.major}.{props.minor}",
        )
        info["topo"] = _nvidia_smi_topo()
        default_local = torch.cuda.device_count()
    else:
        info.update(device_type="cpu", device_count=1, device_name=platform.processor() or platform.machine())
        default_local = 1
    info["local_world_size"] = local or default_local
    info["world_size"] = world or info["local_world_size"]
    info["nodes"] = max(1, info["world_size"] // info["local_world_size"])
    return info


def calibration_path() -> Path:
    """Where `steward plan --calibrate` stores this host's figures: $STEWARD_CALIBRATION, else the
    workspace ($STEWARD_WORKSPACE or ~/.steward)/calibration/<host>.json."""
    explicit = os.environ.get("STEWARD_CALIBRATION")
    if explicit:
        return Path(explicit).expanduser()
    root = Path(os.environ.get("STEWARD_WORKSPACE") or "~/.steward").expanduser()
    return root / "calibration" / f"{socket.gethostname()}.json"


def load_calibration(path: Path | None = None) -> dict[str, Any] | None:
    path = path or calibration_path()
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ClusterError(f"calibration file {path}: unreadable ({e}); run `steward plan --calibrate` again") from None
    if not isinstance(data, dict) or "matmul_flops" not in data:
        raise ClusterError(f"calibration file {path}: no matmul_flops; run `steward plan --calibrate` again")
    if "trainer_fit" in data:
        _check_trainer_fit(path, data["trainer_fit"])
    return data


TRAINER_FIT = ("gemm", "layer_overhead_s", "step_overhead_s", "optimizer_bytes_per_param", "step_overhead_tp_s",
               "step_overhead_fsdp_s")
"""The constants a calibration's trainer_fit holds (`hostfit`): 'gemm' above 0, the others at least 0."""


def _check_trainer_fit(path: Path, fit: Any) -> None:
    consts = fit.get("constants") if isinstance(fit, dict) else None
    for name in TRAINER_FIT:
        v = consts.get(name) if isinstance(consts, dict) else None
        number = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not number or v < 0 or (name == "gemm" and v == 0):
            need = "above 0" if name == "gemm" else "at least 0"
            raise ClusterError(f"calibration file {path}: trainer_fit.constants.{name} is {v!r}, expected a number "
                               f"{need}; run `steward bench planner --save` again, or delete the trainer_fit section")


def apply_calibration(cluster: Cluster, cal: dict[str, Any]) -> Cluster:
    """Replace the device's matmul rates and the intra-node link with measured figures."""
    measured = {str(k): float(v) for k, v in cal.get("matmul_flops", {}).items()}
    device = dataclasses.replace(
        cluster.device,
        peak_flops={**cluster.device.peak_flops, **measured},
        matmul_efficiency=1.0,  # measured rates are achieved rates
        memory_bandwidth=float(cal.get("memory_bandwidth", cluster.device.memory_bandwidth)),
        source=f"calibrated {cal.get('created', '')} on {cal.get('host', '?')}",
        layer_overhead={**cluster.device.layer_overhead, **{
            k: float(cal[key]) for k, key in (("plain", "layer_overhead_s"), ("tp", "layer_overhead_tp_s"),
                                              ("fsdp", "layer_overhead_fsdp_s")) if key in cal}},
        kernels={str(k): float(v) for k, v in cal.get("kernels", {}).items()},
        trainer_fit={k: float(cal["trainer_fit"]["constants"][k]) for k in TRAINER_FIT} if "trainer_fit" in cal else {},
    )
    intra = cluster.intra
    if "collective" in cal:
        c = cal["collective"]
        intra = dataclasses.replace(
            intra, name=c.get("name", intra.name), bandwidth=float(c["bandwidth"]), latency=float(c["latency"]),
            base_latency=0.0, efficiency=1.0, source=f"calibrated {cal.get('created', '')}",
        )
    sources = {**cluster.sources, "device": device.source, "intra": intra.source}
    return dataclasses.replace(cluster, device=device, intra=intra, sources=sources)


def discover_cluster(world_size: int | None = None, local_world_size: int | None = None,
                     info: dict[str, Any] | None = None) -> Cluster:
    """A Cluster for the running job: the preset whose device matches, sized to the job, refined by
    this host's calibration (if `steward plan --calibrate` ran here)."""
    info = info or discover()
    local = local_world_size or info["local_world_size"]
    world = world_size or info["world_size"]
    table = presets()
    if info["device_type"] == "cuda":
        gpu = gpu_for_device_name(info["device_name"])
        base = next((c for c in table.values() if gpu is not None and c.device.key == gpu.key), None)
        if base is None:
            base = table["a100-80gb-ib"]
            if gpu is not None:  # in the GPU table without a preset: its own figures, the A100 preset's links
                dev = dataclasses.replace(base.device, peak_flops=dict(gpu.peak_flops), match=gpu.match, key=gpu.key,
                                          source=gpu.source,
                                          memory_bandwidth=gpu.memory_bandwidth or base.device.memory_bandwidth,
                                          host_bandwidth=gpu.host_bandwidth or base.device.host_bandwidth)
                base = dataclasses.replace(base, device=dev, sources={
                    **base.sources, "device": f"{gpu.source}; links, efficiencies and missing figures: the A100 preset's (assumed)"})
            else:  # an unknown GPU: its memory is known, its peak is not; use the A100's figures
                base = dataclasses.replace(base, sources={**base.sources, "device": "unknown GPU: A100 figures assumed"})
        device = dataclasses.replace(base.device, name=info["device_name"], memory_bytes=info["device_memory_bytes"])
    else:
        base = table["cpu-host"]
        # host memory shared by the workers on this host
        device = dataclasses.replace(base.device, memory_bytes=int(info["host_memory_bytes"] * 0.8 / max(1, local)))
    cluster = dataclasses.replace(
        base, name=f"discovered ({base.name})", nodes=max(1, world // max(1, local)), devices_per_node=local,
        device=device, description=f"this job: {world} process(es), {local} per node, {info['device_name']}",
        cores_per_node=info["cpu_count"] if info["device_type"] == "cpu" else 0,
    )
    cal = load_calibration()
    if cal is not None and cal.get("device_type") == info["device_type"]:
        cluster = apply_calibration(cluster, cal)
    return cluster


def describe(cluster: Cluster) -> list[str]:
    """Human-readable lines for `steward topology`."""
    d = cluster.device
    peaks = ", ".join(f"{k} {v / TFLOPS:g}" for k, v in d.peak_flops.items())
    lines = [
        f"cluster   {cluster.name}: {cluster.description}",
        f"size      {cluster.nodes} node(s) x {cluster.devices_per_node} device(s) = {cluster.world_size}",
        f"device    {d.name} ({d.kind}): {d.memory_bytes / GIB:.1f} GiB, {d.memory_bandwidth / GB:g} GB/s memory, "
        f"peak TFLOP/s {peaks}, matmul efficiency {d.matmul_efficiency:g}",
    ]
    if d.layer_overhead:
        lines.append("overhead  per layer and micro-batch: " + ", ".join(
            f"{k} {v * 1e3:.3g} ms" for k, v in d.layer_overhead.items()))
    for label, link in (("intra", cluster.intra), ("inter", cluster.inter)):
        lines.append(
            f"{label:<9} {link.name}: {link.bandwidth / GB:g} GB/s per device each way "
            f"(x{link.efficiency:g} achieved), {link.latency * 1e6:g} us per step + {link.base_latency * 1e6:g} us"
        )
    for key, src in cluster.sources.items():
        lines.append(f"  source  {key}: {src}")
    return lines
