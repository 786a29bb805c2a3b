"""Mechanisms of the cost model's step time read in the frameworks' code: Megatron-LM's and Megatron-DeepSpeed's
model cast to 16 bits (no autocast) and, before 2022, tensor parallel without sequence parallelism
(`published.FRAMEWORKS`); the forward a full recompute repeats of a fused attention kernel. Each step-time
difference equals a hand count in float64."""

import dataclasses

import pytest

from steward.models.gpt import ModelArgs
from steward.planning import cost
from steward.planning.footprint import layer_activation_bytes, loss_activation_bytes
from steward.planning.kernels import FITTED
from steward.planning.published import FRAMEWORKS, load_runs, request_for


def _run(run_id: str):
    return request_for(next(r for r in load_runs() if r["id"] == run_id))


def _with(req, **impl):
    return dataclasses.replace(req, impl=dataclasses.replace(req.impl, **impl))


def _compute(req, lay) -> float:
    return cost.predict(req, lay, cost.Calibration(constants=FITTED)).time["compute"]


def test_norms_without_sequence_parallel_hold_the_whole_sequence():
    """Per token, a norm site keeps its fp32 input and 16-bit output on 1/tp of the sequence under sequence
    parallelism, on all of it without; the gathered matmul input and the attention and MLP parts are the same."""
    args = ModelArgs(dim=256, n_layers=2, n_heads=4, n_kv_heads=4, vocab_size=1000, ffn_hidden=512)
    h, f, e, tp, tokens = 256.0, 512.0, 2.0, 4.0, 1024.0
    assert args.ffn_dim == 512 and args.kv_heads * args.head_dim == 256
    rest = (4 * e * h + 4 * e * f) / tp
    with_sp = tokens * (2 * ((4 * h + e * h) / tp + e * h) + rest)
    without = tokens * (2 * (4 * h + e * h + e * h) + rest)
    assert layer_activation_bytes(args, 1024, 4, "none", 2) == with_sp
    assert layer_activation_bytes(args, 1024, 4, "none", 2, sequence_parallel=False) == without
    assert layer_activation_bytes(args, 1024, 1, "none", 2, sequence_parallel=False) == \
        layer_activation_bytes(args, 1024, 1, "none", 2)


def test_frameworks_name_megatrons_precision_and_sequence_parallelism():
    for name in ("megatron", "megatron-sp", "megatron-deepspeed"):
        assert FRAMEWORKS[name].cast_model, name
    assert not FRAMEWORKS["megatron"].sequence_parallel and not FRAMEWORKS["megatron-deepspeed"].sequence_parallel
    assert FRAMEWORKS["megatron-sp"].sequence_parallel
    for name in ("llm-foundry", "torchtitan", "kempnerforge"):
        assert not FRAMEWORKS[name].cast_model and FRAMEWORKS[name].sequence_parallel, name


def test_a_cast_model_moves_16_bit_element_wise_bytes():
    """Megatron-LM's 22B row (tp 8, no data parallel: Steward would autocast there): without autocast each
    block and the loss move the bytes of the 16-bit residual stream; the memory is autocast's."""
    req, lay = _run("megatron-readme-22b-a100-8gpu")
    assert req.autocast(lay) and req.impl.cast_model and not req.impl.compiled
    auto = _with(req, cast_model=False)
    tokens, n_micro, bw = lay.micro_batch_size * req.seq_len, req.micro_batches(lay), 2039e9
    assert req.cluster.device.memory_bandwidth == bw and lay.pp == 1
    layer = FITTED.elementwise * (layer_activation_bytes(req.args, tokens, lay.tp, "none", 2, True)
                                  - layer_activation_bytes(req.args, tokens, lay.tp, "none", 2, False))
    loss = (loss_activation_bytes(req.args, tokens, lay.tp, 2, True)
            - loss_activation_bytes(req.args, tokens, lay.tp, 2, False))
    expected = n_micro * (req.args.n_layers * layer + loss) / bw
    assert expected > 0
    assert _compute(auto, lay) - _compute(req, lay) == pytest.approx(expected, rel=1e-9)
    p, p_auto = (cost.predict(r, lay, cost.Calibration(constants=FITTED)) for r in (req, auto))
    assert p.memory_per_device_bytes == p_auto.memory_per_device_bytes


def test_tensor_parallel_without_sequence_parallelism_runs_the_norms_on_every_rank():
    """Narayanan et al. 2021's 18.4B row (tp 8, full recompute, no sequence parallelism): each block moves
    2 (4 h + e h)(1 - 1/tp) more bytes per token, a quarter more under full recompute, and the final norm
    before the loss (4 h + e h)(1 - 1/tp)."""
    req, lay = _run("narayanan-gpt-18.4b-a100-256gpu")
    assert not req.impl.sequence_parallel and lay.tp == 8 and lay.recompute == "full" and lay.pp == 1
    sp = _with(req, sequence_parallel=True)
    h, e, tp = float(req.args.dim), 2.0, 8.0
    tokens, n_micro, bw = lay.micro_batch_size * req.seq_len, req.micro_batches(lay), 2039e9
    per_block = 1.25 * FITTED.elementwise * tokens * 2 * (4 * h + e * h) * (1 - 1 / tp)
    expected = n_micro * (req.args.n_layers * per_block + tokens * (4 * h + e * h) * (1 - 1 / tp)) / bw
    assert _compute(req, lay) - _compute(sp, lay) == pytest.approx(expected, rel=1e-9)


def test_full_recompute_repeats_a_fused_attention_forward_of_one_in_three_and_a_half():
    """Under full recompute a block runs its forward again: a third of its GEMMs' forward and backward, and of
    a fused attention kernel's 1 / 3.5 (FlashAttention's backward does 2.5 times its forward's FLOPs), plus a
    quarter more element-wise traffic. KempnerForge's 7B on one H200 (no tensor or data parallel)."""
    from steward.planning import kernels

    req, lay = _run("kempner-llama3-7b-h200-1gpu-tp1-fsdp1")
    assert lay.recompute == "full" and lay.world == 1 and not req.impl.unfused_attention and req.impl.compiled
    none = dataclasses.replace(lay, recompute="none")
    c = kernels.for_device(FITTED, req.cluster.device.name)
    rates = cost._Rates.of(req)
    tokens, n_micro = lay.micro_batch_size * req.seq_len, req.micro_batches(lay)
    gemms = kernels.block_gemm_time(req.args, tokens, 1, rates.flops, c)
    attention = kernels.attention_time(req.args, lay.micro_batch_size, req.seq_len, 1, rates.flops,
                                       rates.memory_bandwidth, c, False, 2)
    traffic = c.compiled_elementwise * c.elementwise * layer_activation_bytes(req.args, tokens, 1, "none", 2)
    per_block = gemms / 3 + attention / 3.5 + 0.25 * traffic / 4.8e12
    assert rates.memory_bandwidth == 4.8e12
    expected = n_micro * req.args.n_layers * per_block
    assert _compute(req, lay) - _compute(req, none) == pytest.approx(expected, rel=1e-9)
