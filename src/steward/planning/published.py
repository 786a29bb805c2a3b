"""The corpus of published training runs (`published_runs.toml`, facts with their sources) and the
cost model's prediction for each at its published layout, through the same path as
`steward plan --layout` (`layout.evaluate`). `steward bench costmodel` reports the errors.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import tomllib

from steward.errors import ConfigError
from steward.planning.cost import Calibration, Implementation, Prediction, Request
from steward.planning.footprint import BF16_BYTES
from steward.planning.layout import Layout, evaluate, parse_layout
from steward.planning.model_spec import model_args
from steward.planning.topology import load_cluster
from steward.planning.units import GIB

CORPUS = Path(__file__).with_name("published_runs.toml")
FRESH = Path(__file__).with_name("published_runs_fresh.toml")
"""Runs from sources outside CORPUS, collected blind after the model was fixed: predicted, never fitted."""
FUSED_ADAM_BYTES_PER_PARAM = 30
"""A fused (apex / DeepSpeed) Adam step per parameter: reads the fp32 master weight, gradient and both
moments (16 bytes), writes the weight and moments (12) and the 16-bit model copy (2)."""
PRESET = {"a100": "a100-80gb-ib", "h100": "h100-80gb-ib", "h200": "h200-141gb-ib"}
"""The cluster preset a run's GPU is evaluated on (its links; the run's own interconnect is in the corpus)."""

RATED_POWER_W = {"a100": 400, "h100": 700, "h200": 700}
"""The board power at which gpus.toml's peak FLOP/s hold (the datasheets' max TDP: A100 SXM4 400 W, H100 SXM5
up to 700 W, H200 SXM up to 700 W)."""
POWER_EXPONENT = 1 / 3
"""A board held below its rated power runs its tensor cores at (power / rated)^(1/3) of the rated clock
(an assumption: dynamic power grows as f V^2 with the voltage rising with the clock along the DVFS curve,
so about f^3). A cross-check, not a fit: the H100 NVL (400 W, 835 dense BF16 TFLOP/s, the same 132 SMs)
against the SXM (700 W, 989) gives an exponent of 0.30."""

BF16_ADAM_BYTES_PER_PARAM = 14
"""A fused Adam step on bf16 parameters and moments: reads the weight, gradient and both moments (8 bytes),
writes the weight and moments (6)."""

MEGATRON = Implementation(unfused_attention=True, gpt_activations=True, selective_attention_core=True,
                          vocab_parallel_loss=True, optimizer_bytes_per_param=FUSED_ADAM_BYTES_PER_PARAM,
                          cast_model=True, sequence_parallel=False)
FRAMEWORKS = {
    "megatron": MEGATRON,
    "megatron-sp": dataclasses.replace(MEGATRON, tp_backward_overlap=True, sequence_parallel=True),
    "megatron-deepspeed": dataclasses.replace(MEGATRON, optimizer_sharded=True),
    "llm-foundry": Implementation(gpt_activations=True, fsdp_sync_each_micro_batch=True, loss_bytes_per_logit=4),
    "torchtitan": Implementation(fsdp_sync_each_micro_batch=True, selective_recompute_matmuls=("wk", "wo", "w3")),
    "kempnerforge": Implementation(param_bytes=BF16_BYTES, optimizer_bytes_per_param=BF16_ADAM_BYTES_PER_PARAM),
}
"""What the cost model takes from a run's training code (`cost.Implementation`):
  * megatron (Megatron-LM 2021/2022): the attention scores materialised (fused softmax, no flash kernel);
    GPT activations (Korthikanti et al. 2022's counting, which is Megatron's); selective recompute of the
    attention core only; the vocabulary-parallel cross entropy (no logits all-gather); apex's fused Adam;
    the model cast to 16 bits, no torch.autocast (Float16Module: module.half() / module.bfloat16(),
    megatron/model/module.py @de7dc40f883ceed06344051c3c7ebd57da59cc53, the SC21 scripts' commit); no sequence
    parallelism (that commit's arguments.py has no such option): the LayerNorms run on the whole sequence on
    every tensor-parallel rank;
  * megatron-sp (Korthikanti et al. 2022's sequence-parallel Megatron-LM, the README's MFU rows): the same,
    and in backward the reduce-scatter of a column-parallel layer's input gradient overlaps its
    weight-gradient GEMM (megatron/mpu/layers.py LinearWithGradAccumulationAndAsyncCommunication.backward,
    @cfd2e2160700b7f2c1bf35298ac14bc341f4c759, 2022-04-28, the sequence-parallel change; the asynchronous
    communication entered Megatron-LM in 2022, after Narayanan et al. 2021's runs, which keep `megatron`),
    and the norms on each rank's slice of the sequence (--sequence-parallel, Korthikanti et al. 2022);
  * megatron-deepspeed (BLOOM-176B): `megatron`, and ZeRO stage 1 (BLOOM's model card and paper: optimizer
    states sharded over data parallel); no sequence parallelism either (tr11-176B-ml.slurm @003b250 passes
    --bf16 and --checkpoint-activations, no --sequence-parallel);
  * llm-foundry (Composer FSDP): flash attention, GPT activations (LayerNorm, GELU), gradients
    reduce-scattered after each micro-batch (FSDP FULL_SHARD under Composer's accumulation), logits and
    their gradient in 16 bits (4 bytes per token and vocabulary entry);
  * torchtitan (FSDP2, Llama): Steward's decoder's activations, gradients reduce-scattered after each
    micro-batch (no set_requires_gradient_sync(False) in its accumulation loop);
  * KempnerForge (FSDP2, Llama): Steward's decoder's activations and, as Steward's trainer, gradient sync
    off between micro-batches (scripts/train.py's maybe_no_sync, kempnerforge/training/grad.py:
    set_requires_gradient_sync(False) before the last micro-step, @01b461a, the report's commit); the
    model cast to bf16 with no fp32 master copy (scripts/train.py: model.to(dtype=tc.param_dtype), the
    config's param_dtype bf16 for mixed_precision 'bf16'), so gradients and AdamW's moments are bf16
    too, stepped by fused AdamW (config/schema.py: fused = True);
    torchtitan's selective ('op') activation checkpointing saves the outputs of matmuls, flash attention
    and reduce-scatters "except every second mm" (torchtitan/parallelisms/parallelize_llama.py
    _apply_ac_to_transformer_block, @582fe7d1f52ef96987a9d5265b3e2bbefc92d583; the same policy in the
    mid-2024 code), counted per block: wq wk wv wo w1 w3 w2, so wk, wo and w3 run again in backward."""


def load_runs(path: Path | str = CORPUS) -> list[dict[str, Any]]:
    with open(path, "rb") as f:
        runs = tomllib.load(f)["run"]
    positive = {"measured_memory_gib": "the measured peak memory per GPU in GiB",
                "gpu_power_w": "the board's power limit in watts"}
    for run in runs:
        for key, what in positive.items():
            v = run.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
                raise ConfigError(f"{path}: run {run.get('id')!r}: {key}: {v!r} must be a positive number ({what}), "
                                  "or leave the key out")
        if not isinstance(run.get("compile", False), bool):
            raise ConfigError(f"{path}: run {run.get('id')!r}: compile: {run['compile']!r} must be true or false "
                              "(whether the model ran under torch.compile), or leave the key out")
    return runs


def megatron_flops(run: dict[str, Any]) -> float:
    """FLOPs of one step by Narayanan et al. 2021 (SC21) eq. 3, which counts full recompute:
    96 B s l h^2 (1 + s / 6h + V / 16 l h)."""
    m, b, s = run["model"], run["global_batch"], run["seq_len"]
    h, n_layers, v = m["dim"], m["n_layers"], m["vocab_size"]
    return 96 * b * s * n_layers * h**2 * (1 + s / (6 * h) + v / (16 * n_layers * h))


FLOP_FORMULAS = {"megatron": megatron_flops}


def request_for(run: dict[str, Any]) -> tuple[Request, Layout]:
    """The planning request and layout a corpus run describes (the memory limit: the whole device)."""
    m = run["model"]
    dims = {k: m[k] for k in ("n_layers", "dim", "n_heads", "n_kv_heads", "ffn_dim", "vocab_size", "mlp")}
    args = model_args("tiny", {**dims, "max_seq_len": run["seq_len"]}, where=f"{run['id']}: model.")
    per_node = min(run["gpus"], run.get("gpus_per_node", 8))
    cluster = dataclasses.replace(load_cluster(PRESET[run["gpu"]]), nodes=max(1, run["gpus"] // per_node),
                                  devices_per_node=per_node)
    board = {k: f(run[key]) for k, key, f in (("memory_bytes", "gpu_memory_gib", lambda v: int(v * GIB)),
                                                ("memory_bandwidth", "gpu_memory_bandwidth_gb_s", lambda v: v * 1e9))
             if key in run}
    if "gpu_power_w" in run:  # a power-capped board: its clocks, and so its peak, fall with the cap
        scale = min(1.0, run["gpu_power_w"] / RATED_POWER_W[run["gpu"]]) ** POWER_EXPONENT
        board["peak_flops"] = {k: v * scale for k, v in cluster.device.peak_flops.items()}
    if board:
        cluster = dataclasses.replace(cluster, device=dataclasses.replace(cluster.device, **board))
    if "node_network_gb_s" in run:  # the node's adapters together, shared by its GPUs
        inter = dataclasses.replace(cluster.inter, bandwidth=run["node_network_gb_s"] * 1e9 / per_node)
        cluster = dataclasses.replace(cluster, inter=inter)
    lay = run["layout"]
    layout = parse_layout(",".join(f"{k}={lay[k]}" for k in ("tp", "pp", "dp_replicate", "dp_shard",
                                                                 "micro_batch", "recompute")))
    req = Request(args=args, global_batch=run["global_batch"], seq_len=run["seq_len"], cluster=cluster,
                  memory_limit=cluster.device.memory_bytes, dtype="bf16", name=run["id"],
                  impl=dataclasses.replace(FRAMEWORKS[run["framework"]], compiled=run.get("compile", False)))
    return req, layout


def predicted_value(run: dict[str, Any], req: Request, layout: Layout, pred: Prediction) -> float:
    """The prediction in the run's metric: tokens/s per GPU; TFLOP/s per GPU with the run's own FLOP count
    over the predicted step time; MFU (model FLOPs); HFU, which with full recompute counts the recomputed
    forward too (4/3 of the model FLOPs)."""
    if run["metric"] == "tokens_per_s_per_gpu":
        return pred.tokens_per_s / layout.world
    if run["metric"] == "tflops_per_gpu":
        return FLOP_FORMULAS[run["flop_formula"]](run) / pred.step_time_s / layout.world / 1e12
    return pred.mfu * (4 / 3 if run["metric"] == "hfu" and layout.recompute == "full" else 1.0)


def simulator_runs(runs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The runs `steward simulate` checks the cost model against: those with a `simulate` name."""
    return [r for r in (load_runs() if runs is None else runs) if r.get("simulate")]


def predict_run(run: dict[str, Any], cal: Calibration | None = None) -> dict[str, Any]:
    """Published vs predicted in the run's metric; error = predicted / published - 1. A run with a
    measured peak memory (`measured_memory_gib`) also gets `memory_error` = predicted / measured - 1."""
    req, layout = request_for(run)
    p = evaluate(req, layout, cal)
    pred = p.predicted
    value = predicted_value(run, req, layout, pred)
    memory_gib = pred.memory_per_device_bytes / GIB
    row = {"id": run["id"], "source": run["source"], "metric": run["metric"], "published": run["published"],
           "predicted": value, "error": value / run["published"] - 1, "fits": p.fits,
           "predicted_memory_gib": memory_gib, "step_time_s": pred.step_time_s}
    if "measured_memory_gib" in run:
        row["measured_memory_gib"] = run["measured_memory_gib"]
        row["memory_error"] = memory_gib / run["measured_memory_gib"] - 1
    return row
