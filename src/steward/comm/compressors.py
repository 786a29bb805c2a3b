"""Gradient compressors, one registry. Each averages a list of named tensors across a group in place.

Lossy compressors keep error feedback (Seide et al. 2014; Karimireddy et al. 2019): what a step
could not send is added to the next step's gradient, so nothing is lost for good, only delayed.
The error buffers are kept per tensor name, so they survive DDP rebuilding its buckets.

All ranks of a group call `all_reduce_mean` with the same names and shapes in the same order, and
all end with bit-identical results (every rank decodes the same received bytes the same way), so
replicas never drift apart.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import torch

from steward.comm.accounting import CommGroup, Ledger

if TYPE_CHECKING:
    from steward.config import JobConfig
    from steward.config.job import Comm

Named = Sequence[tuple[str, torch.Tensor]]

COMPRESSORS: dict[str, type[Compressor]] = {}


def register_compressor(cls: type[Compressor]) -> type[Compressor]:
    if cls.name in COMPRESSORS:
        raise ValueError(f"compressor {cls.name!r} is registered twice")
    COMPRESSORS[cls.name] = cls
    return cls


def check_compression(cfg: JobConfig) -> None:
    """comm.compressor against the rest of the job (the layout is checked by check_comm_layout)."""
    from steward.config import ConfigError

    compressor = cfg.comm.compressor
    if cfg.train.task == "classify" and compressor != "none":
        raise ConfigError("comm.compressor: gradient compression applies to train.task lm; set --comm.compressor none "
                          "for classify")
    if cfg.train.dtype == "float64" and compressor != "none":
        raise ConfigError("comm.compressor: the compressors send float32 or narrower; set --comm.compressor none "
                          "with train.dtype float64")


def build_compressor(cfg: Comm, seed: int = 0) -> Compressor:
    if cfg.compressor not in COMPRESSORS:
        from steward.config import ConfigError

        raise ConfigError(f"comm.compressor: unknown {cfg.compressor!r}; choose one of {', '.join(COMPRESSORS)}")
    return COMPRESSORS[cfg.compressor](cfg, seed)


def _flat(named: Named) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for _, t in named])


def _write_back(named: Named, flat: torch.Tensor) -> None:
    offset = 0
    for _, t in named:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


class Compressor:
    """Base class: `all_reduce_mean(named, group, ledger)` replaces every tensor by the mean of it
    over `group` (exactly for `none`, approximately otherwise), counting bytes in `ledger`: what it
    sends, and what one fp32 all-reduce of the same tensors would have sent."""

    name: ClassVar[str]
    lossy: ClassVar[bool] = True

    def __init__(self, cfg: Comm, seed: int = 0):
        self.cfg = cfg
        self.seed = seed
        self.errors: dict[str, torch.Tensor] = {}
        """Error-feedback buffers by tensor name (what earlier steps could not send)."""

    def all_reduce_mean(self, named: Named, group: CommGroup, ledger: Ledger) -> None:
        raise NotImplementedError

    def error_norm(self) -> float:
        """L2 norm of all error-feedback state (0 for exact compressors)."""
        return math.sqrt(sum(float(e.double().square().sum()) for e in self.errors.values()))

    _state: ClassVar[tuple[str, ...]] = ("errors",)
    """Attributes (dicts of tensors by name) that carry over from step to step: what a checkpoint keeps."""

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """This rank's state (per rank: error buffers differ between ranks), for checkpoints."""
        return {k: {name: t.detach().cpu().clone() for name, t in getattr(self, k).items()} for k in self._state}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]], device: torch.device | None = None) -> None:
        for k in self._state:
            setattr(self, k, {name: t.to(device) if device is not None else t
                              for name, t in state.get(k, {}).items()})

    # error feedback on the concatenation of the tensors
    def _with_error(self, named: Named) -> torch.Tensor:
        parts = []
        for name, t in named:
            e = self.errors.get(name)
            parts.append(t.reshape(-1).float() + e if e is not None else t.reshape(-1).float())
        return torch.cat(parts)

    def _keep_error(self, named: Named, error: torch.Tensor) -> None:
        offset = 0
        for name, t in named:
            self.errors[name] = error[offset : offset + t.numel()].clone()
            offset += t.numel()


@register_compressor
class NoCompression(Compressor):
    """Plain all-reduce of the concatenated tensors, in their own dtype: the reference every other
    compressor saves against."""

    name = "none"
    lossy = False

    def all_reduce_mean(self, named: Named, group: CommGroup, ledger: Ledger) -> None:
        if group.size == 1 or not named:
            return
        flat = _flat(named)
        ledger.all_reduce(flat, group, baseline=True)
        _write_back(named, flat.div_(group.size))


class _Cast(Compressor):
    """Half-precision all-reduce. Each rank divides by the group size before casting (as PyTorch's
    fp16_compress_hook does) so that the sum cannot overflow fp16's range."""

    dtype: ClassVar[torch.dtype]

    def all_reduce_mean(self, named: Named, group: CommGroup, ledger: Ledger) -> None:
        if group.size == 1 or not named:
            return
        n = group.size
        x = self._with_error(named)
        half = (x / n).to(self.dtype)
        self._keep_error(named, x - half.float() * n)
        ledger.baseline("all_reduce", x.numel(), group)
        ledger.all_reduce(half, group)
        _write_back(named, half.float())


@register_compressor
class Fp16(_Cast):
    name = "fp16"
    dtype = torch.float16


@register_compressor
class Bf16(_Cast):
    name = "bf16"
    dtype = torch.bfloat16


INT8_BLOCK = 256
"""Elements per int8 scale: one fp32 scale per 256 values costs 1.6% extra and keeps an outlier from
flattening the resolution of more than its own block (the block size of bitsandbytes' blockwise
quantisation, Dettmers et al. 2022)."""


def quantize_int8(x: torch.Tensor, block: int = INT8_BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """x (a multiple of `block` elements) -> (int8 values, fp32 absmax/127 scale per block)."""
    blocks = x.view(-1, block)
    scale = blocks.abs().amax(dim=1) / 127.0
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(blocks / safe[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.view(-1), scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor, block: int = INT8_BLOCK) -> torch.Tensor:
    return (q.view(-1, block).float() * scale[:, None]).view(-1)


@register_compressor
class Int8(Compressor):
    """Blockwise int8 in two phases, so nothing is summed in int8 and every byte sent is int8:
    all-to-all of the quantised chunks, each rank averages its chunk, re-quantises it and all-gathers
    it. Both quantisations keep error feedback: the sender's, and the chunk owner's (the "server"
    error of 1-bit Adam, Tang et al. 2021)."""

    name = "int8"
    _state = ("errors", "owner_errors")

    def __init__(self, cfg: Comm, seed: int = 0):
        super().__init__(cfg, seed)
        self.owner_errors: dict[str, torch.Tensor] = {}

    def error_norm(self) -> float:
        own = sum(float(e.double().square().sum()) for e in self.owner_errors.values())
        return math.sqrt(super().error_norm() ** 2 + own)

    @staticmethod
    def _pack(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return torch.cat([q, scale.view(torch.int8)])

    @staticmethod
    def _unpack(row: torch.Tensor, chunk: int) -> torch.Tensor:
        return dequantize_int8(row[:chunk], row[chunk:].contiguous().view(torch.float32))

    def all_reduce_mean(self, named: Named, group: CommGroup, ledger: Ledger) -> None:
        if group.size == 1 or not named:
            return
        n, me = group.size, group.index
        x = self._with_error(named)
        numel = x.numel()
        chunk = math.ceil(numel / (n * INT8_BLOCK)) * INT8_BLOCK
        padded = x.new_zeros(n * chunk)
        padded[:numel] = x
        q, scale = quantize_int8(padded)
        self._keep_error(named, x - dequantize_int8(q, scale)[:numel])
        per_chunk_scales = chunk // INT8_BLOCK
        send = torch.stack([
            self._pack(q[j * chunk : (j + 1) * chunk], scale[j * per_chunk_scales : (j + 1) * per_chunk_scales])
            for j in range(n)
        ])
        recv = torch.empty_like(send)
        ledger.baseline("all_reduce", numel, group)
        ledger.all_to_all(recv.view(-1), send.view(-1), group)
        mine = torch.stack([self._unpack(recv[i], chunk) for i in range(n)]).sum(0) / n
        # the owner's error lives on the same positions of the same named tensors
        owner = x.new_zeros(n * chunk)
        owner_parts = [self.owner_errors.get(name, x.new_zeros(t.numel())) for name, t in named]
        owner[:numel] = torch.cat(owner_parts)
        lo = me * chunk
        mine += owner[lo : lo + chunk]
        q2, scale2 = quantize_int8(mine)
        sent_mine = dequantize_int8(q2, scale2)
        owner.zero_()
        owner[lo : lo + chunk] = mine - sent_mine
        offset = 0
        for name, t in named:
            self.owner_errors[name] = owner[offset : offset + t.numel()].clone()
            offset += t.numel()
        row = self._pack(q2, scale2)
        gathered = row.new_empty(n, row.numel())
        ledger.all_gather(gathered.view(-1), row, group)
        result = torch.cat([self._unpack(gathered[i], chunk) for i in range(n)])
        _write_back(named, result[:numel])


@register_compressor
class TopK(Compressor):
    """The comm.topk_fraction largest-magnitude entries of the (error-corrected) concatenated
    gradient, as fp32 values and int32 indices, all-gathered; the rest waits in the error buffer
    (Stich et al. 2018; Lin et al. 2018)."""

    name = "topk"

    def all_reduce_mean(self, named: Named, group: CommGroup, ledger: Ledger) -> None:
        if group.size == 1 or not named:
            return
        n = group.size
        x = self._with_error(named)
        numel = x.numel()
        if numel >= 2**31:
            raise ValueError(f"topk: {numel} elements in one call exceed int32 indices; use smaller buckets")
        k = max(1, math.ceil(self.cfg.topk_fraction * numel))
        idx = x.abs().topk(k, sorted=False).indices
        values = x[idx]
        error = x.clone()
        error[idx] = 0
        self._keep_error(named, error)
        # values travel as their int32 bit patterns so that one all-gather carries both
        payload = torch.cat([values.view(torch.int32), idx.to(torch.int32)])
        gathered = payload.new_empty(n, 2 * k)
        ledger.baseline("all_reduce", numel, group)
        ledger.all_gather(gathered.view(-1), payload, group)
        all_values = gathered[:, :k].contiguous().view(torch.float32).reshape(-1)
        all_idx = gathered[:, k:].reshape(-1).long()
        result = x.new_zeros(numel).index_add_(0, all_idx, all_values).div_(n)
        _write_back(named, result)


def orthogonalize(matrices: list[torch.Tensor]) -> list[torch.Tensor]:
    """Orthonormal columns spanning each [n, r] matrix, by Householder QR (torch.linalg.qr), batched
    over equal shapes. On the CPU as on the GPU, and it stays finite for zero or dependent columns,
    where Gram-Schmidt divides by zero."""
    out: list[torch.Tensor | None] = [None] * len(matrices)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, m in enumerate(matrices):
        by_shape.setdefault(tuple(m.shape), []).append(i)
    for idxs in by_shape.values():
        q, _ = torch.linalg.qr(torch.stack([matrices[i] for i in idxs]), mode="reduced")
        for j, i in enumerate(idxs):
            out[i] = q[j]
    return out  # type: ignore[return-value]


POWERSGD_MIN_RATE = 2
"""A matrix is low-rank compressed only when that sends this many times fewer elements (the default
min_compression_rate of PyTorch's powerSGD_hook); others go in the uncompressed all-reduce."""


@register_compressor
class PowerSGD(Compressor):
    """Rank-comm.rank PowerSGD (Vogels et al. 2019) per gradient matrix, with error feedback and warm
    start: P = M Q, all-reduce P, orthonormalise, Q = M^T P, all-reduce Q, M ~ P Q^T / n. Tensors
    that low rank would not shrink (vectors, small matrices) go in the first all-reduce uncompressed.
    All P's and uncompressed tensors travel in one all-reduce, all Q's in a second.

    Against PyTorch's powerSGD_hook (same rank, same start step): the same tensors compressed
    (POWERSGD_MIN_RATE), the same bytes, and the same update in exact arithmetic (P, Q and the mean
    depend only on the sum over ranks of gradient plus error, and both error forms below have the
    same sum); only the random first Q differs."""

    name = "powersgd"
    _state = ("errors", "qs")

    def __init__(self, cfg: Comm, seed: int = 0):
        super().__init__(cfg, seed)
        self.qs: dict[str, torch.Tensor] = {}
        """Warm start: each matrix's Q from the previous step."""

    def compresses(self, shape: Sequence[int]) -> bool:
        """Low rank pays when it sends at least POWERSGD_MIN_RATE times fewer elements:
        (rows + cols) * r * rate < rows * cols. Below that, the few bytes saved would cost accuracy."""
        if len(shape) < 2:
            return False
        rows, cols = shape[0], math.prod(shape[1:])
        r = min(self.cfg.rank, rows, cols)
        return (rows + cols) * r * POWERSGD_MIN_RATE < rows * cols

    def _initial_q(self, name: str, cols: int, r: int, device: torch.device) -> torch.Tensor:
        # the same on every rank without communication: seeded by the name, not by the rank (drawn on
        # the CPU, whose generator gives the same numbers everywhere)
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + zlib.crc32(name.encode())) % 2**63)
        return torch.randn(cols, r, generator=g).to(device)

    def all_reduce_mean(self, named: Named, group: CommGroup, ledger: Ledger) -> None:
        if group.size == 1 or not named:
            return
        n = group.size
        mats: list[tuple[str, torch.Tensor, torch.Tensor]] = []  # name, original view, M (fp32)
        plain: list[tuple[str, torch.Tensor]] = []
        for name, t in named:
            if self.compresses(t.shape):
                m = t.reshape(t.shape[0], -1).float()
                if name in self.errors:
                    m = m + self.errors[name]
                mats.append((name, t, m))
            else:
                plain.append((name, t))
        qs = []
        for name, _, m in mats:
            r = min(self.cfg.rank, *m.shape)
            q = self.qs.get(name)
            qs.append(q if q is not None and q.shape == (m.shape[1], r) else self._initial_q(name, m.shape[1], r, m.device))
        qs = orthogonalize(qs) if qs else []
        ps = [m @ q for (_, _, m), q in zip(mats, qs)]
        first = torch.cat([p.reshape(-1) for p in ps] + [t.reshape(-1).float() for _, t in plain])
        ledger.baseline("all_reduce", sum(t.numel() for _, t in named), group)
        ledger.all_reduce(first, group)
        offset = 0
        summed_ps = []
        for p in ps:
            summed_ps.append(first[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
        _write_back(plain, first[offset:].div_(n))
        if not mats:
            return
        # the sum, not the mean, of the P's: orthonormalising removes the scale anyway
        ps = orthogonalize(summed_ps)
        new_qs = [m.T @ p for (_, _, m), p in zip(mats, ps)]
        second = torch.cat([q.reshape(-1) for q in new_qs])
        ledger.all_reduce(second, group)
        second.div_(n)
        offset = 0
        for (name, t, m), p, q in zip(mats, ps, new_qs):
            q_mean = second[offset : offset + q.numel()].view_as(q)
            offset += q.numel()
            approx = p @ q_mean.T
            # the error is what this rank's own M loses to the shared subspace, M - P P^T M, not
            # M - P P^T mean(M) (the paper's and PyTorch's): the mean over ranks, and so every
            # update, is the same, but each rank's deviation from the mean, which the averaged
            # approximation never sends, no longer piles up as a random walk: it is projected
            # away like the rest, and the buffer stays bounded
            self.errors[name] = m - p @ q.T
            self.qs[name] = q_mean.clone()
            t.copy_(approx.view_as(t))
