"""The step time of a transformer block's kernels on a device, and the few constants fitted to published
runs that the cost model (`cost.predict`) uses for them.

Per block and micro-batch:
  * every GEMM (q/k/v, attention output, the feed-forward's three) at a rate that depends on its shape:
    rate = peak x matmul_efficiency x gemm x I / (I + gemm_half), with I = 1 / (1/M + 1/N + 1/K) the
    GEMM's arithmetic intensity (FLOPs per element moved, up to a constant): large GEMMs run near the
    device's measured large-GEMM rate, thin ones (small hidden sizes, tensor-parallel slices) further
    from it. Forward and backward: three GEMMs of the same intensity, 6 M N K FLOPs;
  * attention: with a fused (flash) kernel, 6 h s FLOPs per token (the causal half skipped) at
    `attention` x the GEMM rate (x `attention_hopper` on H100 and H200); unfused (Megatron 2021/2022, BLOOM), the two score GEMMs per head
    (M = N = s, K = head_dim; no causal saving) at their shape's rate, plus `score_passes` 16-bit
    passes over the s x s scores of every head (softmax, mask, its backward) at memory bandwidth; a full
    recompute repeats a third of a GEMM's time and 1 / 3.5 of a fused attention kernel's (its backward does 2.5
    times its forward's FLOPs; `cost`);
  * element-wise kernels: `elementwise` times the bytes the block keeps for backward, at memory bandwidth
    (`compiled_elementwise` of that under torch.compile);
  * `layer_overhead` seconds the device waits per block per micro-batch (launches, framework hooks).
Collectives reach a bandwidth that grows with the message: bandwidth x m / (m + COLLECTIVE_HALF).
Data-parallel collectives are hidden behind `overlap` of the compute of their own phase (`cost`); `contention`
of the hidden time still adds to the step (the collectives' kernels slow the compute they run beside).

`FITTED` holds the constants `steward bench costmodel` fits on every source of published_runs.toml; the
bench reports leave-one-source-out errors, each source predicted by constants fitted without it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from steward.models.gpt import ModelArgs

COLLECTIVE_HALF = 4 * 2**20
"""Message bytes at which a collective reaches half its link's bandwidth (an assumption: NCCL's ring
all-reduce bus bandwidth on NVLink and InfiniBand is near half its peak at a few MiB); not fitted."""


@dataclass(frozen=True)
class Constants:
    """The cost model's fitted constants (see the module docstring)."""

    gemm: float = 1.0
    """Fraction of the device's large-GEMM rate (peak x matmul_efficiency) that training GEMMs sustain."""
    gemm_half: float = 0.0
    """GEMM intensity 1/(1/M + 1/N + 1/K) at which the rate is half of the large-GEMM rate."""
    attention: float = 1.0
    """Fused attention's rate, as a fraction of the sustained GEMM rate."""
    elementwise: float = 4.0
    """Element-wise memory traffic per step, in multiples of the bytes a block keeps for backward."""
    score_passes: float = 0.0
    """Unfused attention: 16-bit passes over every head's s x s scores per step (forward and backward)."""
    overlap: float = 1.0
    """Fraction of the overlappable compute that hides data-parallel collectives."""
    contention: float = 0.0
    """Fraction of the data-parallel collectives' hidden time that still adds to the step: NCCL's kernels
    take SMs and memory bandwidth from the compute they overlap, so a hidden collective is not free."""
    compiled_elementwise: float = 1.0
    """Element-wise traffic under torch.compile, as a fraction of eager's: Inductor fuses the norms,
    activations and residual adds into fewer kernels, each reading and writing its tensors once."""
    attention_hopper: float = 1.0
    """Fused attention's rate on Hopper (H100, H200) relative to `attention` elsewhere: the FlashAttention-2
    kernels PyTorch and these frameworks run were written for Ampere (Shah et al. 2024, FlashAttention-3:
    FlashAttention-2 reaches 35% of an H100's peak against up to 70% of an A100's)."""
    layer_overhead: float = 0.0
    """Seconds per block per micro-batch the device waits for the host (GPUs; CPUs use calibration)."""
    collective_half: float = 0.0
    """Message bytes at half the link's bandwidth (COLLECTIVE_HALF on GPUs); not fitted."""

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


NAMES = tuple(f.name for f in dataclasses.fields(Constants) if f.name != "collective_half")
"""The fitted constants, in the order of a fit's vector."""

FITTED = Constants(gemm=0.8439, gemm_half=96.17, attention=0.5351, elementwise=6.188, score_passes=9.44,
                   overlap=0.7921, contention=0.2573, compiled_elementwise=0.4743, attention_hopper=0.3999,
                   layer_overhead=9.921e-05, collective_half=COLLECTIVE_HALF)
"""Fitted on every source of published_runs.toml by `steward bench costmodel` (in-sample for those runs;
the bench's leave-one-source-out errors are the out-of-sample figures)."""


@dataclass(frozen=True)
class ErrorBand:
    """The measured error of a prediction: the central `coverage` of the leave-one-source-out errors
    (predicted / published throughput - 1) over `runs` published runs. The true step time of a
    prediction t lies in [t (1 + lo), t (1 + hi)] for that share of runs."""

    lo: float
    hi: float
    coverage: float
    runs: int

    def time_range(self, step_time: float) -> tuple[float, float]:
        return step_time * (1 + self.lo), step_time * (1 + self.hi)

    def faster(self, t_a: float, t_b: float) -> bool:
        """Whether a layout predicted at t_a is faster than one at t_b beyond the band: a's slowest
        plausible time below b's fastest."""
        return self.time_range(t_a)[1] < self.time_range(t_b)[0]

    def describe(self) -> str:
        return (f"error band {self.lo:+.0%} to {self.hi:+.0%} on throughput (central {self.coverage:.0%} of "
                f"{self.runs} published runs, each predicted without its source: steward bench costmodel)")


BAND = ErrorBand(lo=-0.1679, hi=0.1491, coverage=0.9, runs=49)
"""Measured by `steward bench costmodel` (its 'error band' line) with FITTED's model."""

NEUTRAL = Constants()
"""The CPU trainer's constants: the calibrated matmul rate as measured, no shape or overlap factors."""


HOPPER = ("H100", "H200")
"""Device names (gpus.toml `name`) of Hopper GPUs, whose fused attention runs at `attention_hopper`."""


def for_device(c: Constants, device_name: str) -> Constants:
    """The constants a device runs at: on Hopper, fused attention at `attention_hopper` of its rate elsewhere."""
    if device_name.startswith(HOPPER) and c.attention_hopper != 1.0:
        return dataclasses.replace(c, attention=c.attention * c.attention_hopper, attention_hopper=1.0)
    return c


def gemm_rate(m: float, n: float, k: float, rate: float, c: Constants) -> float:
    """FLOP/s of an (M, N, K) GEMM on a device whose large GEMMs run at `rate`."""
    intensity = 1.0 / (1.0 / m + 1.0 / n + 1.0 / k)
    return rate * c.gemm * intensity / (intensity + c.gemm_half)


def gemm_time(m: float, n: float, k: float, rate: float, c: Constants) -> float:
    """Seconds of forward and backward (three GEMMs, 6 M N K FLOPs) of an (M, N, K) GEMM."""
    if m <= 0 or n <= 0 or k <= 0:
        return 0.0
    return 6 * m * n * k / gemm_rate(m, n, k, rate, c)


def block_gemm_time(args: ModelArgs, tokens: float, tp: int, rate: float, c: Constants) -> float:
    """Forward and backward of one block's linear layers over `tokens` tokens, sliced by tensor parallel."""
    h, hkv, f = args.dim, args.kv_heads * args.head_dim, args.ffn_dim
    return (gemm_time(tokens, (h + 2 * hkv) / tp, h, rate, c)  # wq, wk, wv (column parallel)
            + gemm_time(tokens, h, h / tp, rate, c)  # wo (row parallel)
            + 2 * gemm_time(tokens, f / tp, h, rate, c)  # w1, w3
            + gemm_time(tokens, h, f / tp, rate, c))  # w2


def forward_gemm_time(args: ModelArgs, tokens: float, tp: int, rate: float, c: Constants,
                      weights: tuple[str, ...]) -> float:
    """Forward only of the block's linear layers named in `weights` (wq, wk, wv, wo, w1, w3, w2), each its
    own GEMM: what a recompute policy that re-runs those matmuls adds."""
    h, hkv, f = args.dim, args.kv_heads * args.head_dim, args.ffn_dim
    n_k = {"wq": (h / tp, h), "wk": (hkv / tp, h), "wv": (hkv / tp, h), "wo": (h, h / tp),
           "w1": (f / tp, h), "w3": (f / tp, h), "w2": (h, f / tp)}
    return sum(gemm_time(tokens, *n_k[w], rate, c) for w in weights) / 3


def head_gemm_time(args: ModelArgs, tokens: float, tp: int, rate: float, c: Constants) -> float:
    return gemm_time(tokens, args.vocab_size / tp, args.dim, rate, c)


def attention_time(args: ModelArgs, micro_batch: int, seq: int, tp: int, rate: float, bandwidth: float,
                   c: Constants, unfused: bool, e: int) -> float:
    """Forward and backward of one block's attention core (scores, softmax, weighted sum)."""
    heads = micro_batch * args.n_heads / tp
    if not unfused:
        return 6 * args.dim * seq * micro_batch * seq / tp / (rate * c.gemm * c.attention)
    hd = args.head_dim
    scores = 2 * heads * gemm_time(seq, seq, hd, rate, c)  # q k^T and p v
    return scores + c.score_passes * e * heads * seq * seq / bandwidth


def collective_bandwidth(bandwidth: float, message: float, c: Constants) -> float:
    """Bytes/s a collective on a `message`-byte buffer (the whole buffer, as nccl-tests count its size)
    reaches on a link of `bandwidth`."""
    return bandwidth * message / (message + c.collective_half)


def from_vector(values, base: Constants = FITTED) -> Constants:
    """`base` with the fitted constants (NAMES) replaced by `values`."""
    return dataclasses.replace(base, **dict(zip(NAMES, (float(v) for v in values))))
