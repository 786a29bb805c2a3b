"""Verification of an audit log from its rows alone, with public keys only.

Checks, in order, stopping at the first failure (which the result names):
0. the store holds the log the run's governance/run.json names (when verifying a run), and no
   heads file that holds heads of another log signed for this same store lacks heads of the
   store's log (a log rebuilt under a fresh log id, consistent and signed with the workspace's
   own key);
1. positions are 0..n-1 with none missing (deletion);
2. every entry's leaf hash recomputed from its fields equals the stored one (change, insertion,
   reordering) and its payload text is canonical;
3. the tree root after every entry, recomputed, equals the stored one;
4. every entry's signature over (log id, size, root, time) verifies with a trusted key (an edit
   that recomputed the hashes; a forged append);
5. the log state's size equals the number of entries (a cut-off tail), and its Merkle frontier
   (what the next append builds on) equals the one recomputed from the entries (an edited frontier
   verified before, and broke the log at the next append);
6. every signed tree head, from the store and from published heads files, verifies, covers no
   more entries than the store holds (truncation, rollback) and equals the recomputed root at its
   size; consecutive heads are consistent (RFC 9162 consistency proofs);
7. (given the workspace's role registry) every change of the registry held in this store was made
   with authority (access.py), every model.approved entry is signed by a personal key registered for
   its approver, and every trainer's key signature in run.started verifies (approvals.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from steward.governance import merkle
from steward.governance._util import canonical_json
from steward.governance.access import Registry, load_registry
from steward.governance.approvals import store_problem
from steward.governance.keys import verify_signature
from steward.governance.store import AuditStore, TreeHead, entry_bytes, head_message


@dataclass
class VerifyResult:
    ok: bool
    store: str
    log_id: str
    entries: int = 0
    root: str = merkle.EMPTY_ROOT.hex()
    heads_checked: int = 0
    published_heads_checked: int = 0
    consistency_checks: int = 0
    last_head_size: int = 0
    signers: list[str] = field(default_factory=list)
    key_trust: str = "trusted"
    warnings: list[str] = field(default_factory=list)
    error: str = ""
    failed_entry: int | None = None
    failed_head: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        if not self.ok:
            return f"FAILED: {self.error}"
        return (
            f"OK: {self.entries} entries, root {self.root}, {self.heads_checked} stored and "
            f"{self.published_heads_checked} published tree heads verified"
        )


class _Failed(Exception):
    """The first check that failed: its message, and the entry or head it names."""

    def __init__(self, msg: str, entry: int | None = None, head: str | None = None):
        super().__init__(msg)
        self.msg, self.entry, self.head = msg, entry, head


def verify_store(
    store: AuditStore,
    trusted_keys: dict[str, Any] | None = None,
    published: list[TreeHead] | tuple[TreeHead, ...] = (),
    strict: bool = False,
    log_id: str = "",
    registry: Registry | None = None,
) -> VerifyResult:
    """Verify `store`. `trusted_keys` (key id -> Ed25519 public key) are the keys signatures must
    verify with; when none are given, the keys recorded in the store are used and the result says
    so (`key_trust` = 'store'; with strict=True that is a failure). `published`: heads from files
    outside the store, of any log (those of this log are checked against it, those of other logs
    show a replaced log); `log_id`: the log a run's governance/run.json names; `registry`: the
    workspace's role registry, against which check 7 runs (skipped when None)."""
    res = VerifyResult(ok=False, store=store.display_url, log_id=store.log_id)
    try:
        _check_log_id(store, log_id, published)
    except _Failed as f:
        res.error = f.msg
        return res
    keys = dict(trusted_keys or {})
    if not keys:
        keys = store.public_keys()
        res.key_trust = "store"
        msg = ("no trusted public key was given or found in the workspace; signatures were checked against "
               "keys recorded in the store itself (pass --public-key)")
        if strict:
            res.error = msg
            return res
        res.warnings.append(msg)

    rows, state, stored = store.snapshot()
    try:
        leaves, roots, signers, frontier = _check_entries(store, rows, keys)
        n = len(rows)
        res.entries, res.root, res.signers = n, roots[-1].hex(), sorted(signers)
        _check_state(state, frontier)
        checked = _check_heads(store, [*stored, *published], keys, leaves, roots, res)
        if registry is not None:
            _check_personal_signatures(store, registry)
    except _Failed as f:
        res.error, res.failed_entry, res.failed_head = f.msg, f.entry, f.head
        return res
    res.last_head_size = max((h.tree_size for h in checked), default=0)
    if res.last_head_size < n:
        res.warnings.append(
            f"entries {res.last_head_size}..{n - 1} are signed but no published tree head covers them yet "
            "(`steward audit head` signs one)"
        )
    res.ok = True
    return res


def _check_log_id(store: AuditStore, log_id: str, published: list[TreeHead] | tuple[TreeHead, ...]) -> None:
    """Check 0: the store holds the run's log, and each heads file that knows another log at this
    store knows this store's log too."""
    if log_id and log_id != store.log_id:
        signed = sum(1 for h in published if h.log_id == log_id)
        raise _Failed(f"the store holds log {store.log_id} but governance/run.json names log {log_id}"
                      + (f" ({signed} published tree heads sign that log)" if signed else "")
                      + ": the run's log was replaced (rebuilt under a new log id) or the run points at another store")
    files: dict[str, list[TreeHead]] = {}
    for h in published:
        files.setdefault(h.origin.rsplit(":", 1)[0], []).append(h)
    for where, heads in files.items():
        other = [h for h in heads if h.store == store.display_url and h.log_id != store.log_id]
        if other and not any(h.log_id == store.log_id for h in heads):
            raise _Failed(f"the store holds log {store.log_id}, but {where} holds heads of log {other[-1].log_id} "
                          "signed for this store and none of its log: the log was replaced (rebuilt under a new "
                          "log id)", head=other[-1].label())


def _check_entries(store: AuditStore, rows: list, keys: dict[str, Any]
                   ) -> tuple[list[bytes], list[bytes], set[str], merkle.Frontier]:
    """Checks 1-4 over every row: the leaves, the roots after each entry (roots[s] = root of the first
    s entries), the signing key ids and the frontier of all entries; _Failed at the first entry that
    does not verify."""
    frontier = merkle.Frontier()
    leaves: list[bytes] = []
    roots: list[bytes] = [merkle.EMPTY_ROOT]
    signers: set[str] = set()
    for i, r in enumerate(rows):
        seq = int(r.seq)
        label = f"entry {i} ({r.type}, {r.time})"
        if seq != i:
            raise _Failed(f"entry {i} is missing: the log jumps from entry {i - 1} to entry {seq} (deleted)", i)
        leaf = merkle.leaf_hash(entry_bytes(store.log_id, seq, r.time, r.actor, r.run_id, r.type,
                                            _payload(r, label, i)))
        if leaf.hex() != r.leaf_hash:
            raise _Failed(f"{label}: fields do not match the recorded leaf hash (changed, inserted or reordered)", i)
        frontier.append(leaf)
        root = frontier.root()
        if root.hex() != r.root:
            raise _Failed(f"{label}: recorded tree root differs from the root recomputed from entries 0..{i}", i)
        key = keys.get(r.key_id)
        if key is None:
            raise _Failed(f"{label}: signed by key {r.key_id[:16]}, which is not trusted (pass its public key "
                          "with --public-key)", i)
        try:
            sig = bytes.fromhex(r.signature)
        except ValueError:
            sig = b""
        if not verify_signature(key, head_message(store.log_id, i + 1, r.root, r.time), sig):
            raise _Failed(f"{label}: signature does not verify with key {r.key_id[:16]} (the entry or its hashes "
                          "were rewritten)", i)
        signers.add(r.key_id)
        leaves.append(leaf)
        roots.append(root)
    return leaves, roots, signers, frontier


def _payload(r, label: str, i: int) -> Any:
    """The row's payload, parsed; _Failed unless its text is the canonical JSON that was recorded."""
    try:
        payload = json.loads(r.payload)
    except (TypeError, ValueError):
        raise _Failed(f"{label}: payload is not JSON (edited)", i) from None
    try:
        canon = canonical_json(payload).decode()
    except ValueError:
        raise _Failed(f"{label}: payload holds values canonical JSON cannot (edited)", i) from None
    if canon != r.payload:
        raise _Failed(f"{label}: payload text is not what was recorded (edited)", i)
    return payload


def _check_state(state: tuple[int, str] | None, frontier: merkle.Frontier) -> None:
    """Check 5: the log state row records exactly the entries present, and the frontier recomputed
    from them."""
    n = frontier.size
    if state is None:
        raise _Failed("the log state row is missing: the store was edited", n)
    state_size, stored = int(state[0]), state[1]
    if state_size > n:
        raise _Failed(f"the log state records {state_size} entries but only {n} are present: entries "
                      f"{n}..{state_size - 1} were deleted", n)
    if state_size < n:
        raise _Failed(f"the log state records {state_size} entries but {n} are present: entries were added "
                      "behind the log's back", state_size)
    try:
        nodes = json.loads(stored)
    except (TypeError, ValueError):
        nodes = None
    if nodes != frontier.to_hex():
        raise _Failed(f"the log state's Merkle frontier differs from the one recomputed from the {n} entries (edited); "
                      "the next append would build on it and break the log", n)


def _check_heads(store: AuditStore, heads: list[TreeHead], keys: dict[str, Any], leaves: list[bytes],
                 roots: list[bytes], res: VerifyResult) -> list[TreeHead]:
    """Check 6 over the stored and published heads of this log, smallest first (counted in `res`
    as they pass); returns the heads checked."""
    n = len(leaves)
    tree = merkle.Tree(leaves)
    checked: list[TreeHead] = []
    for h in sorted(heads, key=lambda h: (h.tree_size, h.origin != "store")):
        if h.log_id != store.log_id:
            continue
        key = keys.get(h.key_id)
        if key is None:
            raise _Failed(f"{h.label()} is signed by key {h.key_id[:16]}, which is not trusted", head=h.label())
        if not h.verify(key):
            raise _Failed(f"{h.label()}: signature does not verify with key {h.key_id[:16]} (the head was edited)",
                          head=h.label())
        if h.tree_size > n:
            raise _Failed(f"{h.label()} covers {h.tree_size} entries but the store holds {n}: the log was truncated "
                          "or rolled back", n, h.label())
        if roots[h.tree_size].hex() != h.root_hash:
            good = max((c.tree_size for c in checked), default=0)
            raise _Failed(f"{h.label()}: signed root differs from the root of entries 0..{h.tree_size - 1}: the log "
                          f"was rewritten before entry {h.tree_size} (at or after entry {good})", None, h.label())
        if checked and checked[-1].tree_size < h.tree_size:
            a = checked[-1]
            proof = tree.consistency_proof(a.tree_size, h.tree_size)
            if not merkle.verify_consistency(a.tree_size, h.tree_size, bytes.fromhex(a.root_hash),
                                             bytes.fromhex(h.root_hash), proof):
                raise _Failed(f"{a.label()} and {h.label()} are not consistent", None, h.label())
            res.consistency_checks += 1
        checked.append(h)
        if h.origin == "store":
            res.heads_checked += 1
        else:
            res.published_heads_checked += 1
    return checked


def _check_personal_signatures(store: AuditStore, registry: Registry) -> None:
    """Check 7: the registry changes this store holds had authority; approvals and trainers' keys verify."""
    own = load_registry(store)
    if own.problems:
        raise _Failed(f"role registry: {own.problems[0]}")
    why, seq = store_problem(store, registry)
    if why:
        raise _Failed(why, seq)


def inclusion_proof(store: AuditStore, index: int, size: int | None = None) -> dict[str, Any]:
    """Inclusion proof for entry `index` in the tree of `size` entries (default: all), checked before
    it is returned."""
    leaves = [bytes.fromhex(r.leaf_hash) for r in store.raw_rows()]
    tree = merkle.Tree(leaves)
    size = len(leaves) if size is None else size
    proof = tree.inclusion_proof(index, size)
    root = tree.root(size)
    return {
        "log_id": store.log_id,
        "index": index,
        "tree_size": size,
        "leaf_hash": leaves[index].hex(),
        "root_hash": root.hex(),
        "proof": [p.hex() for p in proof],
        "verified": merkle.verify_inclusion(index, size, leaves[index], proof, root),
    }


def consistency_proof(store: AuditStore, old_size: int, size: int | None = None) -> dict[str, Any]:
    leaves = [bytes.fromhex(r.leaf_hash) for r in store.raw_rows()]
    tree = merkle.Tree(leaves)
    size = len(leaves) if size is None else size
    proof = tree.consistency_proof(old_size, size)
    old_root, new_root = tree.root(old_size), tree.root(size)
    return {
        "log_id": store.log_id,
        "old_size": old_size,
        "tree_size": size,
        "old_root": old_root.hex(),
        "root_hash": new_root.hex(),
        "proof": [p.hex() for p in proof],
        "verified": merkle.verify_consistency(old_size, size, old_root, new_root, proof),
    }
