"""Byte accounting: what each rank sends for gradient aggregation, split into intra- and inter-node.

Every collective that aggregates gradients goes through a `Ledger` method that records the size of
the tensor actually handed to torch.distributed and then calls it, so the counts cannot drift from
what is sent. Payload bytes become bytes on the wire by the bandwidth-optimal ring algorithms
(Patarasuk & Yuan 2009; what NCCL's ring and gloo's ring all-reduce do), which fix both how much a
rank sends and to whom:

- all-reduce of N elements over n ranks: the ring splits N into n chunks c_0..c_{n-1}; rank i sends
  every chunk but one in the reduce-scatter phase and every chunk but one in the all-gather phase,
  2N - c_{(i+1)%n} - c_{(i+2)%n} elements in all (2(n-1)/n of N when n divides N);
- reduce-scatter of n*S elements: (n-1)*S; all-gather of S per rank: (n-1)*S;
- in the ring every byte goes to the next rank of the group, so it is inter-node exactly when that
  rank is on another node;
- all-to-all with equal splits: S to every other rank, each classified by its destination's node.

Next to the bytes sent, the ledger keeps what the uncompressed algorithm (fp32, same structure:
flat or hierarchical) would have sent, recorded by the caller with `baseline`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class CommGroup:
    """A process group with the global ranks it holds, in group-rank order (the ring order)."""

    pg: Any
    ranks: tuple[int, ...]
    rank: int
    """This process's global rank."""

    @classmethod
    def of(cls, pg: Any) -> CommGroup:
        return cls(pg, tuple(dist.get_process_group_ranks(pg)), dist.get_rank())

    @property
    def size(self) -> int:
        return len(self.ranks)

    @property
    def index(self) -> int:
        return self.ranks.index(self.rank)


def _ring_chunks(numel: int, n: int) -> list[int]:
    q, r = divmod(numel, n)
    return [q + (j < r) for j in range(n)]


def wire_elements(op: str, numel: int, n: int, index: int) -> int:
    """Elements rank `index` of an n-rank group sends in a ring `op` whose payload is `numel`
    elements (all_reduce: the tensor; reduce_scatter: the input; all_gather: this rank's input;
    all_to_all: the whole input, split equally)."""
    if n <= 1:
        return 0
    if op == "all_reduce":
        c = _ring_chunks(numel, n)
        return 2 * numel - c[(index + 1) % n] - c[(index + 2) % n]
    if op == "reduce_scatter":
        return (n - 1) * (numel // n)
    if op == "all_gather":
        return (n - 1) * numel
    if op == "all_to_all":
        return (n - 1) * (numel // n)
    raise ValueError(f"unknown collective {op!r}")


@dataclass
class Record:
    """One collective as this rank took part in it."""

    op: str
    group: tuple[int, ...]
    payload_bytes: int
    """Bytes of the tensor handed to torch.distributed (the whole input for all_to_all)."""
    intra: int
    inter: int
    baseline: bool
    """True for the uncompressed counterfactual (not sent)."""


@dataclass
class Ledger:
    """Per-step byte counts of this rank; `node_of(rank)` says which node a global rank is on."""

    node_of: Callable[[int], int]
    step: dict[str, int] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    """This step's collectives (cleared by `take_step`), for inspection and tests."""

    def __post_init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.step = {"intra": 0, "inter": 0, "intra_uncompressed": 0, "inter_uncompressed": 0}
        self.records = []

    def split(self, op: str, numel: int, element_size: int, group: CommGroup) -> tuple[int, int]:
        """(intra, inter) bytes this rank sends in `op` over `group`."""
        n, i = group.size, group.index
        me = self.node_of(group.rank)
        if op == "all_to_all":
            per_peer = numel // n * element_size if n > 1 else 0
            inter = sum(per_peer for r in group.ranks if r != group.rank and self.node_of(r) != me)
            intra = per_peer * (n - 1) - inter
            return intra, inter
        sent = wire_elements(op, numel, n, i) * element_size
        successor = group.ranks[(i + 1) % n]
        return (0, sent) if self.node_of(successor) != me else (sent, 0)

    def account(self, op: str, numel: int, element_size: int, group: CommGroup, *, sent: bool = True,
                baseline: bool = True) -> None:
        """Count a collective: as sent (`sent`), and/or as what the uncompressed algorithm sends
        (`baseline`). Use directly only for collectives torch runs itself (FSDP's reduce-scatter)."""
        intra, inter = self.split(op, numel, element_size, group)
        if sent:
            self.step["intra"] += intra
            self.step["inter"] += inter
            self.records.append(Record(op, group.ranks, numel * element_size, intra, inter, False))
        if baseline:
            self.step["intra_uncompressed"] += intra
            self.step["inter_uncompressed"] += inter
            if not sent:
                self.records.append(Record(op, group.ranks, numel * element_size, intra, inter, True))

    def baseline(self, op: str, numel: int, group: CommGroup, element_size: int = 4) -> None:
        """What the uncompressed (fp32) algorithm would send here."""
        self.account(op, numel, element_size, group, sent=False, baseline=True)

    # The collectives: count what is handed over, then send it. `baseline=False` when the caller
    # records the uncompressed counterfactual separately (compressed payloads).

    def all_reduce(self, tensor: torch.Tensor, group: CommGroup, *, baseline: bool = False,
                   async_op: bool = False):
        self.account("all_reduce", tensor.numel(), tensor.element_size(), group, baseline=baseline)
        return dist.all_reduce(tensor, group=group.pg, async_op=async_op)

    def reduce_scatter(self, output: torch.Tensor, input: torch.Tensor, group: CommGroup, *,
                       baseline: bool = False) -> None:
        self.account("reduce_scatter", input.numel(), input.element_size(), group, baseline=baseline)
        dist.reduce_scatter_tensor(output, input, group=group.pg)

    def all_gather(self, output: torch.Tensor, input: torch.Tensor, group: CommGroup, *,
                   baseline: bool = False) -> None:
        self.account("all_gather", input.numel(), input.element_size(), group, baseline=baseline)
        dist.all_gather_into_tensor(output, input, group=group.pg)

    def all_to_all(self, output: torch.Tensor, input: torch.Tensor, group: CommGroup, *,
                   baseline: bool = False) -> None:
        self.account("all_to_all", input.numel(), input.element_size(), group, baseline=baseline)
        dist.all_to_all_single(output, input, group=group.pg)

    def take_step(self) -> dict[str, int]:
        """This rank's counts since the last call, then start a new step."""
        out = dict(self.step)
        self._reset()
        return out
