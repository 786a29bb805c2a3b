"""The audit store on SQLite and PostgreSQL: append, verify, and catch every kind of tampering;
wrong keys; two processes appending at once; a process killed mid-append."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from sqlalchemy import text

from steward.governance import merkle
from steward.governance.keys import create_signer
from steward.governance.store import AuditStore, TreeHead, entry_bytes
from steward.governance.verify import inclusion_proof, verify_store


@pytest.fixture
def signer(tmp_path):
    return create_signer(tmp_path / "keys" / "signing_key.pem")


def fill(url, signer, n=12, heads_at=(5, 12)):
    store = AuditStore(url)
    for i in range(n):
        store.append("test.event", {"i": i, "tags": ["a", i], "x": 0.5 * i}, actor=f"user{i % 3}",
                     run_id="run-a", signer=signer)
        if i + 1 in heads_at:
            store.sign_head(signer)
    return store


def sql(store, stmt, **params):
    with store.engine.begin() as conn:
        conn.execute(text(stmt), params)


def recompute(store, signer_keep=None):
    """What an attacker without the private key can do: rebuild every leaf hash, root and the log
    state from the (edited) rows, keeping the old signatures."""
    rows = store.raw_rows()
    frontier = merkle.Frontier()
    with store.engine.begin() as conn:
        for i, r in enumerate(rows):
            leaf = merkle.leaf_hash(entry_bytes(store.log_id, i, r.time, r.actor, r.run_id, r.type, json.loads(r.payload)))
            frontier.append(leaf)
            conn.execute(text("UPDATE steward_entries SET seq = :i, leaf_hash = :l, root = :r WHERE seq = :s"),
                         {"i": i, "l": leaf.hex(), "r": frontier.root().hex(), "s": r.seq})
        conn.execute(text("UPDATE steward_state SET size = :n, frontier = :f WHERE id = 1"),
                     {"n": frontier.size, "f": json.dumps(frontier.to_hex())})


def trusted(signer):
    return {signer.key_id: signer.public_key}


def test_append_and_verify(store_url, signer):
    store = fill(store_url, signer)
    res = verify_store(store, trusted(signer))
    assert res.ok, res.error
    assert res.entries == 12 and res.heads_checked == 2 and res.consistency_checks == 1
    assert res.root == store.state()[1] == store.heads()[-1].root_hash
    e = store.entry(7)
    assert e.payload == {"i": 7, "tags": ["a", 7], "x": 3.5} and e.actor == "user1" and e.run_id == "run-a"
    proof = inclusion_proof(store, 7)
    assert proof["verified"] and proof["tree_size"] == 12
    store.close()


def _payload(store, seq, stmt_value):
    sql(store, "UPDATE steward_entries SET payload = :p WHERE seq = :s", p=stmt_value, s=seq)


TAMPER = {
    "change payload": (lambda s, k: _payload(s, 3, '{"i":33,"tags":["a",3],"x":1.5}'), 3, "leaf hash"),
    "change actor": (lambda s, k: sql(s, "UPDATE steward_entries SET actor = 'mallory' WHERE seq = 3"), 3, "leaf hash"),
    "change type": (lambda s, k: sql(s, "UPDATE steward_entries SET type = 'model.approved' WHERE seq = 4"), 4,
                    "leaf hash"),
    "whitespace in payload": (lambda s, k: _payload(s, 2, '{"i": 2, "tags":["a",2],"x":1.0}'), 2, "payload text"),
    "change and recompute hashes": (lambda s, k: (_payload(s, 3, '{"i":33,"tags":["a",3],"x":1.5}'), recompute(s)),
                                    3, "signature"),
    "delete middle": (lambda s, k: sql(s, "DELETE FROM steward_entries WHERE seq = 6"), 6, "missing"),
    "delete middle and renumber": (lambda s, k: (sql(s, "DELETE FROM steward_entries WHERE seq = 6"), recompute(s)),
                                   6, "signature"),
    "insert": (lambda s, k: _insert(s, 4), 4, "leaf hash"),
    "insert and recompute": (lambda s, k: (_insert(s, 4), recompute(s)), 4, "signature"),
    "reorder": (lambda s, k: _swap(s, 3, 4), 3, "leaf hash"),
    "reorder and recompute": (lambda s, k: (_swap(s, 3, 4), recompute(s)), 3, "signature"),
    "truncate tail": (lambda s, k: sql(s, "DELETE FROM steward_entries WHERE seq >= 10"), 10, "were deleted"),
    "truncate tail and fix state": (lambda s, k: (sql(s, "DELETE FROM steward_entries WHERE seq >= 10"), recompute(s)),
                                    10, "truncated or rolled back"),
    "edit a signed head": (lambda s, k: sql(s, "UPDATE steward_heads SET root_hash = :r WHERE id = 1", r="0" * 64),
                           None, "signature does not verify"),
}


def _insert(store, at):
    rows = store.raw_rows()
    with store.engine.begin() as conn:
        for r in reversed(rows[at:]):
            conn.execute(text("UPDATE steward_entries SET seq = seq + 1 WHERE seq = :s"), {"s": r.seq})
        src = rows[at]
        conn.execute(text("INSERT INTO steward_entries (seq, time, actor, run_id, type, payload, leaf_hash, root, "
                          "key_id, signature) VALUES (:seq, :time, 'mallory', :run, 'model.approved', '{}', :leaf, "
                          ":root, :kid, :sig)"),
                     {"seq": at, "time": src.time, "run": src.run_id, "leaf": src.leaf_hash, "root": src.root,
                      "kid": src.key_id, "sig": src.signature})
        conn.execute(text("UPDATE steward_state SET size = size + 1 WHERE id = 1"))


def _swap(store, a, b):
    ra, rb = store.raw_rows()[a], store.raw_rows()[b]
    cols = ("time", "actor", "run_id", "type", "payload", "leaf_hash", "root", "key_id", "signature")
    with store.engine.begin() as conn:
        for src, dst in ((ra, b), (rb, a)):
            conn.execute(text("UPDATE steward_entries SET " + ", ".join(f"{c} = :{c}" for c in cols) + " WHERE seq = :s"),
                         {**{c: getattr(src, c) for c in cols}, "s": dst})


@pytest.mark.parametrize("kind", list(TAMPER))
def test_every_kind_of_tampering_is_caught(store_url, signer, kind):
    store = fill(store_url, signer)
    assert verify_store(store, trusted(signer)).ok
    edit, entry, words = TAMPER[kind]
    edit(store, signer)
    res = verify_store(store, trusted(signer))
    assert not res.ok
    assert words in res.error, res.error
    if entry is not None:
        assert res.failed_entry == entry, res.error
        assert res.error.startswith(f"entry {entry}") or f"entries {entry}" in res.error or "head" in res.error
    else:
        assert res.failed_head and res.failed_head.startswith("head #1")
    store.close()


def _frontier(store):
    with store.engine.connect() as conn:
        return json.loads(conn.execute(text("SELECT frontier FROM steward_state WHERE id = 1")).scalar())


FRONTIER_EDITS = {  # the stored Merkle frontier (what the next append builds on), edited with the size left alone
    "zeroed": lambda nodes: json.dumps(["0" * 64] * len(nodes)),
    "emptied": lambda nodes: "[]",
    "one node dropped": lambda nodes: json.dumps(nodes[1:]),
    "not JSON": lambda nodes: "zero",
}


@pytest.mark.parametrize("kind", list(FRONTIER_EDITS))
def test_an_edited_frontier_is_caught_before_the_next_append(store_url, signer, kind):
    store = fill(store_url, signer)  # 12 entries: a frontier of two nodes (8 + 4)
    nodes = _frontier(store)
    assert len(nodes) == 2 and verify_store(store, trusted(signer)).ok
    sql(store, "UPDATE steward_state SET frontier = :f WHERE id = 1", f=FRONTIER_EDITS[kind](nodes))
    res = verify_store(store, trusted(signer))
    assert not res.ok and res.failed_entry == 12, res.error
    assert res.error.startswith("the log state's Merkle frontier differs from the one recomputed from the 12 "
                                "entries"), res.error
    sql(store, "UPDATE steward_state SET frontier = :f WHERE id = 1", f=json.dumps(nodes))
    assert verify_store(store, trusted(signer)).ok
    store.close()


def test_a_zeroed_frontier_breaks_the_next_append(store_url, signer):
    """Why the frontier is checked: an append builds on it, so a zeroed one makes the next entry's
    root wrong, and the log no longer verifies from that entry on."""
    store = fill(store_url, signer, n=4, heads_at=())
    sql(store, "UPDATE steward_state SET frontier = :f WHERE id = 1", f=json.dumps(["0" * 64]))
    store.append("after", {}, actor="a", run_id="r", signer=signer)
    res = verify_store(store, trusted(signer))
    assert not res.ok and res.failed_entry == 4 and "recorded tree root differs" in res.error
    store.close()


def test_rollback_caught_only_by_a_published_head(store_url, signer):
    """A store cut back to an earlier state with its heads removed verifies on its own; the head
    published outside the store catches it."""
    store = fill(store_url, signer, n=12, heads_at=(12,))
    published = store.heads()
    sql(store, "DELETE FROM steward_entries WHERE seq >= 8")
    sql(store, "DELETE FROM steward_heads")
    recompute(store)
    assert verify_store(store, trusted(signer)).ok  # nothing inside the store shows the loss
    external = [TreeHead.from_dict(h.to_dict(), "heads.jsonl:1") for h in published]
    res = verify_store(store, trusted(signer), external)
    assert not res.ok and "truncated or rolled back" in res.error and res.failed_head.startswith("head from heads.jsonl")
    store.close()


def test_rollback_of_a_sqlite_file_is_caught_with_a_published_head(tmp_path, signer):
    import shutil

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = fill(url, signer, n=6, heads_at=(6,))
    store.close()
    shutil.copy(tmp_path / "audit.db", tmp_path / "old.db")
    store = AuditStore(url)
    for i in range(3):
        store.append("later", {"i": i}, actor="a", run_id="r", signer=signer)
    newer = store.sign_head(signer)
    store.close()
    shutil.copy(tmp_path / "old.db", tmp_path / "audit.db")  # the rollback
    store = AuditStore(url, create=False)
    assert verify_store(store, trusted(signer)).ok
    res = verify_store(store, trusted(signer), [TreeHead.from_dict(newer.to_dict(), "published")])
    assert not res.ok and "covers 9 entries but the store holds 6" in res.error
    store.close()


def test_signatures_need_the_right_key(store_url, signer, tmp_path):
    store = fill(store_url, signer)
    other = create_signer(tmp_path / "other" / "key.pem")
    res = verify_store(store, trusted(other))
    assert not res.ok and res.failed_entry == 0 and "not trusted" in res.error
    # a forger with their own key appends an entry: the store now holds two keys, one untrusted
    store.append("model.approved", {"forged": True}, actor="mallory", run_id="run-a", signer=other)
    res = verify_store(store, trusted(signer))
    assert not res.ok and res.failed_entry == 12 and "not trusted" in res.error
    # a key id swapped to the trusted one does not help: the signature itself fails
    sql(store, "UPDATE steward_entries SET key_id = :k WHERE seq = 12", k=signer.key_id)
    res = verify_store(store, trusted(signer))
    assert not res.ok and res.failed_entry == 12 and "signature does not verify" in res.error
    store.close()


def test_without_trusted_keys_store_keys_are_used_and_said(store_url, signer):
    store = fill(store_url, signer, n=3)
    res = verify_store(store, None)
    assert res.ok and res.key_trust == "store" and res.warnings
    assert not verify_store(store, None, strict=True).ok
    store.close()


def test_reopening_keeps_the_log_and_a_missing_store_is_an_error(tmp_path, signer):
    from steward.governance import GovernanceError

    url = f"sqlite:///{tmp_path / 'a.db'}"
    s1 = fill(url, signer, n=3)
    s1.close()
    s2 = AuditStore(url, create=False)
    assert s2.size() == 3 and s2.log_id == s1.log_id
    s2.append("x", {}, actor="a", run_id="r", signer=signer)
    assert verify_store(s2, trusted(signer)).entries == 4
    s2.close()
    with pytest.raises(GovernanceError, match="no audit store"):
        AuditStore(f"sqlite:///{tmp_path / 'nope.db'}", create=False)
    with pytest.raises(GovernanceError, match="only sqlite and postgresql"):
        AuditStore("mysql://u@h/db")


APPENDER = textwrap.dedent("""
    import sys, time
    from steward.governance.keys import load_signer
    from steward.governance.store import AuditStore
    url, key, name, n, start = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    signer = load_signer(key)
    store = AuditStore(url)
    while time.time() < start:
        time.sleep(0.001)
    i = 0
    while n < 0 or i < n:
        store.append("proc.event", {"proc": name, "i": i}, actor=name, run_id=name, signer=signer)
        i += 1
        if n < 0:
            print(i, flush=True)
""")


def _spawn(url, signer, name, n, start):
    return subprocess.Popen([sys.executable, "-c", APPENDER, url, str(signer.path), name, str(n), str(start)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_appending_at_once_leave_one_log(store_url, signer):
    AuditStore(store_url).close()  # schema first, so both start appending at once
    start = time.time() + 1.5
    procs = [_spawn(store_url, signer, name, 40, start) for name in ("p1", "p2")]
    live = AuditStore(store_url, create=False)
    checks = 0
    while any(p.poll() is None for p in procs):  # verifying while both append sees one consistent state
        res = verify_store(live, trusted(signer))
        assert res.ok, res.error
        checks += 1
        time.sleep(0.2)
    live.close()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    store = AuditStore(store_url, create=False)
    res = verify_store(store, trusted(signer))
    assert res.ok, res.error
    assert res.entries == 80
    for name in ("p1", "p2"):
        seen = [e.payload["i"] for e in store.entries(run_id=name)]
        assert seen == list(range(40))
    store.close()


def test_a_process_killed_mid_append_leaves_a_log_that_verifies(tmp_path, signer):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    AuditStore(url).close()
    p = _spawn(url, signer, "victim", -1, 0)
    deadline = time.time() + 60
    while time.time() < deadline:
        line = p.stdout.readline()
        if line and int(line) >= 25:
            break
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    store = AuditStore(url, create=False)
    res = verify_store(store, trusted(signer))
    assert res.ok, res.error
    assert res.entries >= 25
    store.append("after.crash", {}, actor="a", run_id="r", signer=signer)
    assert verify_store(store, trusted(signer)).ok
    store.close()


def test_governance_imports_no_training_code():
    code = ("import sys, importlib, pkgutil, steward.governance as g\n"
            "for m in pkgutil.iter_modules(g.__path__): importlib.import_module('steward.governance.' + m.name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith(("
            "'steward.train', 'steward.models', 'steward.data', 'steward.parallel', 'steward.planning')))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", out
