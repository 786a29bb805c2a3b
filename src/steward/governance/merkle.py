"""Merkle tree hashing, inclusion and consistency proofs as in RFC 9162 section 2.1
(Certificate Transparency v2; the same tree as RFC 6962).

Leaf hash SHA-256(0x00 || entry), node hash SHA-256(0x01 || left || right); the tree over n
leaves splits at the largest power of two below n. Functions take leaf *hashes* (32 bytes each).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]): pairs neighbours level by level; an odd last node moves up unchanged, which
    yields exactly the RFC's left-balanced tree."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


class Tree:
    """Proofs over a fixed list of leaf hashes; subtree hashes are cached, so many proofs over
    the same leaves (one verification run) cost little more than one."""

    def __init__(self, leaves: Sequence[bytes]):
        self.leaves = list(leaves)
        self._mth = functools.lru_cache(maxsize=None)(self._mth_uncached)

    def __len__(self) -> int:
        return len(self.leaves)

    def _mth_uncached(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n == 1:
            return self.leaves[lo]
        k = _split(n)
        return node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        self._check_size(size)
        return self._mth(0, size)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= len(self.leaves):
            raise ValueError(f"tree size {size} is outside 0..{len(self.leaves)}")

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(m, D[n]) of RFC 9162 section 2.1.3.1."""
        size = len(self.leaves) if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is outside the tree of size {size}")
        return self._path(index, 0, size)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return self._path(m, lo, lo + k) + [self._mth(lo + k, hi)]
        return self._path(m - k, lo + k, hi) + [self._mth(lo, lo + k)]

    def consistency_proof(self, old_size: int, size: int | None = None) -> list[bytes]:
        """PROOF(m, D[n]) of RFC 9162 section 2.1.4.1 (empty when m is 0 or m == n)."""
        size = len(self.leaves) if size is None else size
        self._check_size(size)
        if not 0 <= old_size <= size:
            raise ValueError(f"old tree size {old_size} is outside 0..{size}")
        if old_size in (0, size):
            return []
        return self._subproof(old_size, 0, size, True)

    def _subproof(self, m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [self._mth(lo, hi)]
        k = _split(n)
        if m <= k:
            return self._subproof(m, lo, lo + k, complete) + [self._mth(lo + k, hi)]
        return self._subproof(m - k, lo + k, hi, False) + [self._mth(lo, lo + k)]


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    return Tree(leaves).inclusion_proof(index)


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    return Tree(leaves).consistency_proof(old_size)


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The root that `proof` implies for `leaf` at `index` (RFC 9162 section 2.1.3.2), or None
    when the proof has the wrong shape for that index and size."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes) -> bool:
    return root_from_inclusion_proof(index, size, leaf, proof) == root_hash


def verify_consistency(
    old_size: int, size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2, plus the trivial cases (old tree empty, or the same size)."""
    if not 0 <= old_size <= size:
        return False
    if old_size == 0:
        return not proof
    if old_size == size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


class Frontier:
    """The roots of the perfect subtrees that make up a tree of `size` leaves (largest first):
    enough to append a leaf and compute the new root in O(log n), so appends never re-read the log."""

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()):
        if bin(size).count("1") != len(nodes):
            raise ValueError(f"a frontier of {size} leaves has {bin(size).count('1')} nodes, got {len(nodes)}")
        self.size = size
        self.nodes = list(nodes)

    def append(self, leaf: bytes) -> None:
        h, s = leaf, self.size
        while s & 1:
            h = node_hash(self.nodes.pop(), h)
            s >>= 1
        self.nodes.append(h)
        self.size += 1

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        r = self.nodes[-1]
        for n in reversed(self.nodes[:-1]):
            r = node_hash(n, r)
        return r

    def to_hex(self) -> list[str]:
        return [n.hex() for n in self.nodes]

    @classmethod
    def from_hex(cls, size: int, nodes: Sequence[str]) -> Frontier:
        return cls(size, [bytes.fromhex(n) for n in nodes])
