"""The activation tracker: live bytes, op by op, of what autograd holds.

`ActivationTracker` is a dispatch mode that sees every tensor the ops create and when the last
reference to its storage goes; it also sums FLOPs, bytes moved and a per-op roofline time (at a
device's figures) by phase. `profile` runs one block and the head under it; `measure_activations`
runs a whole model's training step under it (what the tests and `steward bench memory` compare the
predictions with).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry, sdpa_backward_flop_count, sdpa_flop_count

from steward.planning.hardware import Device

_aten = torch.ops.aten
_CPU_FLASH = _aten._scaled_dot_product_flash_attention_for_cpu.default
_CPU_FLASH_BWD = _aten._scaled_dot_product_flash_attention_for_cpu_backward.default


def nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _op_flops(func, args, kwargs, out) -> float:
    if func is _CPU_FLASH:  # torch's flop counter knows the CUDA kernels only
        q, k, v = args[:3]
        return float(sdpa_flop_count(q.shape, k.shape, v.shape))
    if func is _CPU_FLASH_BWD:
        grad_out, q, k, v = args[:4]
        return float(sdpa_backward_flop_count(grad_out.shape, q.shape, k.shape, v.shape))
    formula = flop_registry.get(func._overloadpacket)
    return float(formula(*args, **kwargs, out_val=out)) if formula is not None else 0.0


class ActivationTracker(TorchDispatchMode):
    """Live bytes of the storages created by ops on `device_type` while it is active.

    A storage is born when an op first returns it and dies when nothing but the tracker holds it
    (checked after every op). Storages named in `exclude` (parameters, inputs) are not counted.
    Also sums FLOPs, bytes moved and a per-op roofline time by phase ('forward', 'backward'): the
    op's FLOPs over the bf16 peak of the device `spec`, or its bytes over that device's memory
    bandwidth, whichever is longer.
    """

    def __init__(self, device_type: str, exclude: set[int] | None = None, spec: Device | None = None):
        super().__init__()
        self.device_type = device_type
        self.exclude = set(exclude or ())
        self.spec = spec
        self.live: dict[int, tuple[torch.UntypedStorage, int, int]] = {}  # key -> (storage, bytes, uid)
        self.events: list[tuple[int, int, int]] = []  # (op index, +/- bytes, uid)
        self.seq = 0
        self._uid = 0
        self.phase = "forward"
        self.flops: dict[str, float] = {"forward": 0.0, "backward": 0.0}
        self.roofline_s: dict[str, float] = {"forward": 0.0, "backward": 0.0}
        self.bytes_moved: dict[str, int] = {"forward": 0, "backward": 0}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.seq += 1
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        self._cost(func, args, kwargs, out, outs)
        for t in outs:
            if t.device.type != self.device_type:
                continue
            storage = t.untyped_storage()
            key = storage._cdata
            if key in self.exclude or key in self.live:
                continue
            self._uid += 1
            n = storage.nbytes()
            self.live[key] = (storage, n, self._uid)
            self.events.append((self.seq, n, self._uid))
        self.sweep()
        return out

    def _cost(self, func, args, kwargs, out, outs) -> None:
        flops = _op_flops(func, args, kwargs, out)
        self.flops[self.phase] = self.flops.get(self.phase, 0.0) + flops
        if getattr(func, "is_view", False):
            moved = 0
        else:
            ins = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
            moved = sum(nbytes(t) for t in ins) + sum(nbytes(t) for t in outs)
        self.bytes_moved[self.phase] = self.bytes_moved.get(self.phase, 0) + moved
        if self.spec is None:
            return
        seconds = max(flops / self.spec.peak_flops["bf16"], moved / self.spec.memory_bandwidth)
        self.roofline_s[self.phase] = self.roofline_s.get(self.phase, 0.0) + seconds

    def sweep(self) -> None:
        dead = [k for k in self.live if torch._C._storage_Use_Count(k) <= 1]
        for key in dead:
            _, n, uid = self.live.pop(key)
            self.events.append((self.seq, -n, uid))

    def mark(self) -> int:
        """A point in the timeline (after dropping what died since the last op)."""
        self.sweep()
        return len(self.events)

    def uids(self, tensors) -> set[int]:
        """Tracker ids of the live storages of `tensors` (to leave them out of a peak)."""
        out = set()
        for t in tensors:
            if isinstance(t, torch.Tensor):
                entry = self.live.get(t.untyped_storage()._cdata)
                if entry is not None:
                    out.add(entry[2])
        return out

    def live_bytes(self, ignore: set[int] = frozenset()) -> int:
        return sum(n for _, n, uid in self.live.values() if uid not in ignore)

    def peak(self, start: int = 0, end: int | None = None, ignore: set[int] = frozenset()) -> int:
        """Highest live bytes between two marks, leaving out the storages `ignore` names."""
        end = len(self.events) if end is None else end
        live = sum(d for _, d, uid in self.events[:start] if uid not in ignore)
        best = live
        for _, delta, uid in self.events[start:end]:
            if uid in ignore:
                continue
            live += delta
            best = max(best, live)  # births of an op come before the deaths found after it
        return best


def storage_keys(tensors) -> set[int]:
    return {t.untyped_storage()._cdata for t in tensors if isinstance(t, torch.Tensor)}


def measure_activations(model: nn.Module, tokens: torch.Tensor, autocast=None) -> dict[str, Any]:
    """Track one forward and backward of `model` on `tokens` [B, T+1] (inputs and shifted
    targets), as the trainer's step runs it: the highest live activation bytes (parameter
    gradients left out: they are static memory) and the bytes held when backward starts."""
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    model.zero_grad(set_to_none=True)
    exclude = storage_keys([*model.parameters(), *model.buffers(), tokens])
    tracker = ActivationTracker(tokens.device.type, exclude)
    with tracker:
        with autocast or contextlib.nullcontext():
            logits = model(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        del logits
        saved = tracker.live_bytes()
        tracker.phase = "backward"
        loss.backward()
        del loss
        end = tracker.mark()
    grads = tracker.uids([p.grad for p in model.parameters()])
    return {
        "activation_peak_bytes": tracker.peak(0, end, ignore=grads),
        "saved_bytes": saved,
        "flops": dict(tracker.flops),
    }
