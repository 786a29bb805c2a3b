"""Cluster presets, cluster files and their errors, discovery, and `steward topology`."""

import json

import pytest

from steward.cli.main import main
from steward.planning.topology import (
    ClusterError,
    apply_calibration,
    discover,
    discover_cluster,
    load_cluster,
    parse_nvidia_smi_topo,
    presets,
)
from steward.planning.units import GIB

GOOD = """
name = "lab"
description = "two boxes"
nodes = 2
devices_per_node = 4
[device]
name = "Lab GPU"
kind = "cuda"
memory_gib = 24
memory_bandwidth_gb_s = 900
peak_tflops = { bf16 = 100, fp32 = 20 }
matmul_efficiency = 0.7
[intra]
name = "PCIe 4"
bandwidth_gb_s = 25
latency_us = 5
[inter]
name = "100 GbE"
bandwidth_gb_s = 12.5
latency_us = 20
efficiency = 0.8
"""


def test_presets_have_the_required_clusters_and_sources():
    table = presets()
    a100, h100, cpu = table["a100-80gb-ib"], table["h100-80gb-ib"], table["cpu-host"]
    assert (a100.devices_per_node, a100.device.memory_bytes) == (8, 80 * GIB)
    assert a100.device.peak_flops["bf16"] == 312e12 and a100.inter.bandwidth == 25e9  # 200 Gb/s per GPU
    assert h100.device.peak_flops["bf16"] == 989e12 and h100.inter.bandwidth == 50e9  # 400 Gb/s per GPU
    assert cpu.device.kind == "cpu"
    for c in table.values():
        assert c.source and c.device.source and c.intra.source and c.inter.source, c.name
        assert c.intra.bandwidth > c.inter.bandwidth or c.device.kind == "cpu"


def test_nodes_override_and_link_classes():
    c = load_cluster("a100-80gb-ib", nodes=64)
    assert c.world_size == 512
    assert c.link(8, 1) is c.intra  # tp 8 fills a node
    assert c.link(2, 8) is c.inter  # the next dim crosses nodes
    assert c.link(2, 2) is c.intra and c.link(1, 64) is c.intra
    assert c.link(3, 1) is c.inter  # 3 does not tile 8 devices: some groups straddle nodes


def test_cluster_file(tmp_path):
    f = tmp_path / "lab.toml"
    f.write_text(GOOD)
    c = load_cluster(str(f))
    assert (c.name, c.nodes, c.world_size) == ("lab", 2, 8)
    assert c.device.flops("bf16") == pytest.approx(70e12)
    assert c.inter.effective_bandwidth == pytest.approx(10e9)
    assert load_cluster(str(f), nodes=3).world_size == 12


@pytest.mark.parametrize("edit, field", [
    (("memory_gib = 24", "memory_gib = -1"), "device.memory_gib"),
    (("memory_gib = 24", 'memory_gib = "lots"'), "device.memory_gib"),
    (("bandwidth_gb_s = 25", ""), "intra.bandwidth_gb_s"),
    (("devices_per_node = 4", "devices_per_node = 0"), "devices_per_node"),
    (("efficiency = 0.8", "efficiency = 1.5"), "inter.efficiency"),
    (('kind = "cuda"', 'kind = "tpu"'), "device.kind"),
    (("peak_tflops = { bf16 = 100, fp32 = 20 }", "peak_tflops = 5"), "device.peak_tflops"),
    (('description = "two boxes"', 'colour = "red"'), "colour"),
    (("[inter]", "[outer]"), "outer: unknown key"),
    (('[inter]\nname = "100 GbE"\nbandwidth_gb_s = 12.5\nlatency_us = 20\nefficiency = 0.8\n', ""), "missing table [inter]"),
])
def test_malformed_cluster_files_name_the_field(tmp_path, edit, field):
    f = tmp_path / "bad.toml"
    f.write_text(GOOD.replace(*edit))
    with pytest.raises(ClusterError) as e:
        load_cluster(str(f))
    msg = str(e.value)
    assert field in msg and str(f) in msg and "\n" not in msg


def test_unreadable_and_unknown_clusters(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("[device\nname=")
    with pytest.raises(ClusterError, match="not valid TOML"):
        load_cluster(str(f))
    with pytest.raises(ClusterError, match="neither a preset"):
        load_cluster("no-such-cluster")
    with pytest.raises(ClusterError, match="--nodes"):
        load_cluster("cpu-host", nodes=0)


def test_nvidia_smi_topo_parsing():
    text = (
        "\tGPU0\tGPU1\tGPU2\tCPU Affinity\tNUMA Affinity\n"
        "GPU0\t X \tNV12\tSYS\t0-63\t0\n"
        "GPU1\tNV12\t X \tPIX\t0-63\t0\n"
        "GPU2\tSYS\tPIX\t X \t64-127\t1\n"
        "\nLegend:\n  X    = Self\n"
    )
    topo = parse_nvidia_smi_topo(text)
    assert topo["gpus"] == ["GPU0", "GPU1", "GPU2"]
    assert topo["links"]["GPU0-GPU1"] == "NV12" and topo["links"]["GPU2-GPU1"] == "PIX"
    assert "GPU0-GPU0" not in topo["links"]


def test_discovery_and_calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    info = discover()
    assert (info["world_size"], info["local_world_size"], info["nodes"]) == (4, 2, 2)
    assert info["host_memory_bytes"] > 0
    cal = {"device_type": info["device_type"], "matmul_flops": {"fp32": 1.5e11}, "memory_bandwidth": 3e10,
           "collective": {"name": "measured", "bandwidth": 2e9, "latency": 1e-4}}
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(cal))
    monkeypatch.setenv("STEWARD_CALIBRATION", str(path))
    c = discover_cluster()
    assert (c.nodes, c.devices_per_node) == (2, 2)
    assert c.device.flops("fp32") == 1.5e11 and c.intra.effective_bandwidth == 2e9
    assert apply_calibration(load_cluster("cpu-host"), cal).device.memory_bandwidth == 3e10
    path.write_text("{not json")
    with pytest.raises(ClusterError, match="calibration file"):
        discover_cluster()


def test_topology_command(tmp_path, capsys):
    assert main(["topology", "--list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"a100-80gb-ib", "h100-80gb-ib", "cpu-host"} <= set(out["presets"])
    assert main(["topology", "--cluster", "h100-80gb-ib", "--nodes", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cluster"]["world_size"] == 32
    assert main(["topology"]) == 0
    assert "this machine" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("memory_gib = 24", "memory_gib = 0"))
    assert main(["topology", "--cluster", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("steward topology: error:") and "device.memory_gib" in err and "\n" not in err
