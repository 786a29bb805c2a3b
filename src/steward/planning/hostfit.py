"""This host's constants fitted on real trainer steps (CPU hosts): what kernels timed alone do not see.

The calibration (`calibrate`) times kernels in isolation, the best of a few repetitions; a training
step also carries Python dispatch and autograd bookkeeping around every op of every layer, the optimizer
step over every parameter (foreach AdamW and the gradient clipping, on many small tensors), and the
trainer's own work once per step (the loss, the next batch, logging, zero_grad, the scheduler).
`steward bench planner` trains a few calibration shapes (`SHAPES`: the `debug` and `tiny` decoders in one
process at other batch sizes, sequence lengths, micro-batches and vocabularies than the layouts it
predicts, and `debug` under tensor parallel and FSDP2 in two processes), times them as it times the
layouts (the median step after warm-up), and fits six constants the cost model has a place for
(`cost.with_trainer_fit`):

  * 'gemm': the fraction of the calibrated GEMM and attention rates the trainer's kernels reach;
  * 'layer_overhead_s': seconds per block per micro-batch beyond the block's arithmetic (replacing the
    isolated tiny block's figure; the measured tensor-parallel and FSDP2 extras stay on top of it);
  * 'step_overhead_s': seconds per step outside the layers and the optimizer's traffic (a term the model
    lacked: it is 0 on GPUs, where the host's work overlaps the device's);
  * 'optimizer_bytes_per_param': the optimizer step's memory traffic per parameter at the calibrated copy
    bandwidth (92 bytes counted for clipped foreach AdamW streaming large tensors; small tensors' per-op
    work shows as more);
  * 'step_overhead_tp_s', 'step_overhead_fsdp_s': seconds per step a job under tensor parallel (DTensor)
    or FSDP2 spends beyond that, on top of the per-layer extras calibrated on a one-rank mesh. Per step,
    not per layer, as measured: `debug` (2 layers) and `tiny` (4) in two processes under load 5 were
    slower than the model by 66 and 73 ms a step under FSDP2, 167 and 175 ms under tensor parallel.

The per-step form was chosen after seeing those gaps on `tiny` at 8 x 128, a layout the bench predicts:
the values are fitted without the layouts, the form was not chosen without them.

For a layout without pipeline stages the model's step time is affine in x = (1 / gemm, and the other
constants as they are): t = a + A x, with a and A's columns read off the model itself (`design`). The
fit is least squares in float64 on the relative residuals (each run's error as a fraction of its step
time, as the bench reports errors), with every component of x at least 0 (an exact non-negative least
squares: each subset of the components free, the best feasible solution kept).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from steward.errors import StewardError
from steward.planning.cost import Calibration, Layout, Request, predict, with_trainer_fit
from steward.planning.topology import TRAINER_FIT

NAMES = TRAINER_FIT
"""The fitted constants (as the calibration file's trainer_fit.constants names them)."""


class HostFitError(StewardError):
    """The calibration runs do not determine the constants."""


@dataclass(frozen=True)
class Shape:
    """One calibration run: a decoder flavor trained at this batch, sequence length, micro-batch (0: the
    whole per-rank batch) and vocabulary (0: the tokenizer's), in one process, or in tp x dp_shard."""

    flavor: str
    batch: int
    seq_len: int
    micro_batch: int = 0
    vocab: int = 0
    tp: int = 1
    dp_shard: int = 1

    @property
    def nproc(self) -> int:
        return self.tp * self.dp_shard

    @property
    def name(self) -> str:
        extra = (f" micro {self.micro_batch}" if self.micro_batch else "") + (f" vocab {self.vocab}" if self.vocab else "")
        extra += (f" tp {self.tp}" if self.tp > 1 else "") + (f" fsdp {self.dp_shard}" if self.dp_shard > 1 else "")
        return f"{self.flavor} {self.batch}x{self.seq_len}{extra}"

    def flags(self) -> list[str]:
        """The trainer's flags for this shape (the bench adds the rest)."""
        out = ["--model.flavor", self.flavor, "--train.batch_size", str(self.batch), "--train.seq_len", str(self.seq_len)]
        for flag, value in (("--train.micro_batch_size", self.micro_batch), ("--model.vocab_size", self.vocab)):
            out += [flag, str(value)] if value else []
        for flag, value in (("--parallel.tp", self.tp), ("--parallel.dp_shard", self.dp_shard)):
            out += [flag, str(value)] if value > 1 else []
        return out


SHAPES = (
    Shape("debug", 4, 64),
    Shape("debug", 16, 128),
    Shape("debug", 16, 128, micro_batch=4),
    Shape("debug", 4, 64, vocab=4096),
    Shape("tiny", 4, 64),
    Shape("tiny", 4, 256),
    Shape("tiny", 16, 64, micro_batch=4),
    Shape("tiny", 2, 128, vocab=4096),
    Shape("debug", 16, 128, tp=2),
    Shape("debug", 8, 64, tp=2),
    Shape("debug", 16, 128, dp_shard=2),
    Shape("debug", 8, 64, dp_shard=2),
)
"""The calibration runs: two depths and widths, 256 to 2048 tokens a step, one or four micro-batches, two
vocabularies (so the optimizer's parameters vary apart from the layers), the logits at most 1M entries
(4 MB: within this host's caches, as the layouts' are; 8M entries spilled to memory and ran the loss 27x
slower than 1M, a regime the model does not describe); and `debug` under tensor parallel and under FSDP2
in two processes at two batch sizes each, for the two wrappers' per-step overheads. None is a layout
`steward bench planner` predicts (those train `tiny` at 8 x 128 in one micro-batch per rank)."""


def constants(x) -> dict[str, float]:
    """The constants of a point x = (1 / gemm, and the other NAMES as they are)."""
    if not x[0] > 0:
        raise HostFitError("trainer fit: the GEMM term came out 0, so the calibration runs do not determine the "
                           "GEMM rate; run the benchmark again on a quieter host")
    return {"gemm": 1.0 / float(x[0])} | {name: float(v) for name, v in zip(NAMES[1:], x[1:])}


BASE = np.array([1.0, 1e-3, 1e-3, 100.0, 1e-3, 1e-3])
"""The point the model is read at (any point gives the same a and A: the step time is affine in x)."""


def design(cases: list[tuple[Request, Layout]], cal: Calibration) -> tuple[np.ndarray, np.ndarray]:
    """The model's step times of `cases` (layouts without pipeline stages) under `cal` as a + A x: `a`
    (seconds) and `A` (one column per component of x), read off `cost.predict` by differences."""
    if any(lay.pp > 1 for _, lay in cases):
        raise ValueError("design: the step time is affine in the constants only without pipeline stages")

    def times(x) -> np.ndarray:
        fitted = with_trainer_fit(cal, constants(x))
        return np.array([predict(req, lay, fitted).step_time_s for req, lay in cases], dtype=np.float64)

    t0 = times(BASE)
    columns = []
    for j in range(len(BASE)):
        x = BASE.copy()
        x[j] *= 2
        columns.append((times(x) - t0) / BASE[j])
    a_matrix = np.stack(columns, axis=1)
    return t0 - a_matrix @ BASE, a_matrix


def nonnegative_lstsq(a_matrix: np.ndarray, b: np.ndarray) -> np.ndarray:
    """min |A x - b| over x >= 0, exactly: the unconstrained solution on every subset of free components
    (the others 0), the best feasible one kept (columns scaled to unit norm for the solve)."""
    n = a_matrix.shape[1]
    scale = np.linalg.norm(a_matrix, axis=0)
    scale[scale == 0] = 1.0
    scaled = a_matrix / scale
    best, best_x = np.inf, np.zeros(n)
    for free in itertools.product((False, True), repeat=n):
        idx = [i for i in range(n) if free[i]]
        x = np.zeros(n)
        if idx:
            sol = np.linalg.lstsq(scaled[:, idx], b, rcond=None)[0]
            if (sol < 0).any():
                continue
            x[idx] = sol
        r = float(np.linalg.norm(scaled @ x - b))
        if r < best:
            best, best_x = r, x
    return best_x / scale


def fit(a: np.ndarray, a_matrix: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """x minimising the relative residuals of a + A x against the measured step times."""
    w = 1.0 / measured
    return nonnegative_lstsq(a_matrix * w[:, None], (measured - a) * w)


def leave_one_out(a: np.ndarray, a_matrix: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Each run's step time predicted by the constants fitted on the other runs."""
    out = np.empty_like(measured)
    for i in range(len(measured)):
        keep = np.arange(len(measured)) != i
        out[i] = a[i] + a_matrix[i] @ fit(a[keep], a_matrix[keep], measured[keep])
    return out


def host_fit(names: list[str], cases: list[tuple[Request, Layout]], cal: Calibration,
             measured: list[float]) -> dict:
    """The calibration file's trainer_fit section: the constants fitted on every run, and per run its
    measured, fitted and leave-one-out step time and errors."""
    if len(measured) <= len(NAMES):
        raise HostFitError(f"trainer fit: {len(measured)} calibration runs for {len(NAMES)} constants; "
                           f"it needs at least {len(NAMES) + 1} for a leave-one-out error")
    y = np.asarray(measured, dtype=np.float64)
    a, a_matrix = design(cases, cal)
    x = fit(a, a_matrix, y)
    fitted, loo = a + a_matrix @ x, leave_one_out(a, a_matrix, y)
    runs = [{"shape": name, "measured_step_time_s": float(m), "fitted_step_time_s": float(f),
             "fitted_error": float(f / m - 1), "leave_one_out_step_time_s": float(lo),
             "leave_one_out_error": float(lo / m - 1)} for name, m, f, lo in zip(names, y, fitted, loo)]
    return {"constants": constants(x), "runs": runs,
            "leave_one_out_mean_abs_error": float(np.mean([abs(r["leave_one_out_error"]) for r in runs])),
            "leave_one_out_mean_signed_error": float(np.mean([r["leave_one_out_error"] for r in runs]))}
