"""The one GPU table (steward/planning/gpus.toml) and the one device type: its entries, name matching,
and the three readers that used to keep their own figures (memory planner, MFU, cluster presets)."""

import pytest
import torch

from steward.planning.hardware import (
    Device,
    HardwareError,
    gpu_for_device_name,
    gpu_from_dict,
    gpus,
    plannable_gpus,
)
from steward.planning.topology import ClusterError, cluster_from_dict, discover_cluster, presets
from steward.train import metrics


def test_every_entry_has_a_bf16_peak_and_a_source():
    table = gpus()
    assert {"a100", "h100", "h200", "h100-pcie", "l40s", "a10g", "l4"} <= set(table)
    for key, g in table.items():
        assert isinstance(g, Device) and g.key == key and g.match and g.source, key
        assert g.peak_flops["bf16"] > 0
    assert set(plannable_gpus()) == {"a100", "h100", "h200"}
    assert gpus()["h100"].memory_bytes == 81559 * 2**20 and gpus()["h200"].memory_bandwidth == 4.8e12


@pytest.mark.parametrize("torch_name, key", [
    ("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA H100 PCIe", "h100-pcie"), ("NVIDIA H200", "h200"),
    ("NVIDIA A100-SXM4-80GB", "a100"), ("NVIDIA L40S", "l40s"), ("NVIDIA L4", "l4"), ("NVIDIA A10G", "a10g"),
    ("Tesla T4", None),
])
def test_the_longest_matching_name_wins(torch_name, key):
    g = gpu_for_device_name(torch_name)
    assert (g.key if g else None) == key


def test_planner_mfu_and_presets_read_the_same_figures(monkeypatch):
    from steward.planning.remat import spec_for_device

    table = gpus()
    for key, spec in plannable_gpus().items():
        assert spec is table[key]  # the memory planner's devices are the table's entries
    for preset, key in (("a100-80gb-ib", "a100"), ("h100-80gb-ib", "h100"), ("h200-141gb-ib", "h200")):
        dev = presets()[preset].device
        g = table[key]
        assert (dev.name, dev.memory_bytes, dev.peak_flops, dev.memory_bandwidth, dev.match, dev.source) == (
            g.name, g.memory_bytes, g.peak_flops, g.memory_bandwidth, g.match, g.source)
        assert (dev.key, dev.host_bandwidth) == (key, g.host_bandwidth)
    # on a GPU the memory planner takes the table's figures for the board in use, with its own memory
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: type("P", (), {"total_memory": 7})())
    here = spec_for_device(torch.device("cuda"))
    assert (here.key, here.memory_bytes, here.peak_flops, here.host_bandwidth) == (
        "h100", 7, table["h100"].peak_flops, table["h100"].host_bandwidth)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    assert metrics.device_peak_flops(torch.device("cuda")) == 756e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    assert metrics.device_peak_flops(torch.device("cuda")) is None
    assert metrics.device_peak_flops(torch.device("cpu")) is None


LINKS = {"intra": {"name": "NVLink", "bandwidth_gb_s": 450, "latency_us": 3},
         "inter": {"name": "IB", "bandwidth_gb_s": 50, "latency_us": 10}}


def test_a_cluster_file_names_its_gpu_and_may_override_a_figure():
    c = cluster_from_dict("lab", {"devices_per_node": 8, "device": {"gpu": "h200", "matmul_efficiency": 0.8}, **LINKS},
                          "lab.toml")
    g = gpus()["h200"]
    assert (c.device.memory_bytes, c.device.peak_flops["bf16"], c.device.name) == (g.memory_bytes, 989e12, g.name)
    c = cluster_from_dict("lab", {"devices_per_node": 8, "device": {"gpu": "h100", "memory_gib": 94}, **LINKS},
                          "lab.toml")
    assert c.device.memory_bytes == 94 * 2**30 and c.device.peak_flops["bf16"] == 989e12
    with pytest.raises(ClusterError) as e:
        cluster_from_dict("lab", {"devices_per_node": 8, "device": {"gpu": "h900"}, **LINKS}, "lab.toml")
    assert "lab.toml: device.gpu: unknown GPU 'h900'; choose one of a100, h100" in str(e.value)
    # the table has only a bf16 peak for the L4: the file must give the rest
    with pytest.raises(ClusterError, match=r"lab.toml: device.memory_gib: missing \(steward/gpus.toml has no such figure for 'l4'\)"):
        cluster_from_dict("lab", {"devices_per_node": 8, "device": {"gpu": "l4"}, **LINKS}, "lab.toml")


def _cuda_info(name: str) -> dict:
    return {"device_type": "cuda", "device_name": name, "device_memory_bytes": 80 * 2**30, "local_world_size": 8,
            "world_size": 16, "cpu_count": 64, "host_memory_bytes": 2**40}


def test_discovery_picks_the_preset_of_the_gpu(monkeypatch, tmp_path):
    monkeypatch.setenv("STEWARD_CALIBRATION", str(tmp_path / "none.json"))
    c = discover_cluster(info=_cuda_info("NVIDIA H200"))
    assert c.name == "discovered (h200-141gb-ib)" and c.device.memory_bandwidth == 4.8e12 and c.nodes == 2
    # in the table without a preset: its own peak, the A100 preset's links, said so
    c = discover_cluster(info=_cuda_info("NVIDIA L40S"))
    assert c.device.peak_flops == {"bf16": 362e12} and c.inter.bandwidth == 25e9
    assert "A100 preset's (assumed)" in c.sources["device"]
    c = discover_cluster(info=_cuda_info("Tesla T4"))
    assert c.device.peak_flops["bf16"] == 312e12 and c.sources["device"] == "unknown GPU: A100 figures assumed"


@pytest.mark.parametrize("table, field", [
    ({"match": ["X"], "peak_tflops": {"fp32": 1}}, "peak_tflops"),
    ({"match": [], "peak_tflops": {"bf16": 1}}, "match"),
    ({"match": ["X"], "peak_tflops": {"bf16": -1}}, "peak_tflops.bf16"),
    ({"match": ["X"], "peak_tflops": {"bf16": 1}, "memory_mib": "lots"}, "memory_mib"),
    ({"match": ["X"], "peak_tflops": {"bf16": 1}, "hbm": 1}, "hbm"),
])
def test_bad_gpu_entries_name_the_field(table, field):
    with pytest.raises(HardwareError) as e:
        gpu_from_dict("x", table)
    assert str(e.value).startswith(f"gpus.toml [x] {field}:") and "\n" not in str(e.value)
