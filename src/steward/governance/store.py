"""The audit store (ISO/IEC 27001 A.5.33, A.8.15): an append-only log of lifecycle events in
SQLite (default) or PostgreSQL, through SQLAlchemy.

Every entry is one leaf of an RFC 9162 Merkle tree. A row keeps the entry's fields, its leaf hash,
the tree root after it, and an Ed25519 signature over that tree head (log id, size, root, time),
so an edit of any row is caught even when its hashes are recomputed: that needs the private key.
Signed tree heads written at run end or on demand go to `steward_heads` and to files outside the
store (see workspace.py), which catch a store cut short or rolled back.

Appends are serialised: SQLite takes the write lock at BEGIN (BEGIN IMMEDIATE), PostgreSQL locks
the single state row (SELECT ... FOR UPDATE), so two processes appending at once leave one log.
"""

from __future__ import annotations

import json
import time as _time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from steward.config import credentials
from steward.governance import merkle
from steward.governance._util import GovernanceError, canonical_json, jsonable, one_line, utc_now
from steward.governance.keys import Signer, load_public_key, verify_signature

SCHEMA_VERSION = "1"
HEAD_DOMAIN = b"steward-tree-head-v1\n"

_md = MetaData()
META = Table("steward_meta", _md, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False))
STATE = Table(
    "steward_state",
    _md,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("frontier", Text, nullable=False),
)
ENTRIES = Table(
    "steward_entries",
    _md,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", String(40), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("run_id", String(64), nullable=False, index=True),
    Column("type", String(64), nullable=False, index=True),
    Column("payload", Text, nullable=False),
    Column("leaf_hash", String(64), nullable=False),
    Column("root", String(64), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
)
HEADS = Table(
    "steward_heads",
    _md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tree_size", BigInteger, nullable=False),
    Column("root_hash", String(64), nullable=False),
    Column("timestamp", String(40), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
)
KEYS = Table(
    "steward_keys",
    _md,
    Column("key_id", String(64), primary_key=True),
    Column("public_key", Text, nullable=False),
    Column("first_seen", String(40), nullable=False),
)


def head_message(log_id: str, tree_size: int, root_hash: str, timestamp: str) -> bytes:
    """What a tree head's signature covers."""
    return HEAD_DOMAIN + canonical_json(
        {"log_id": log_id, "root_hash": root_hash, "timestamp": timestamp, "tree_size": tree_size}
    )


def entry_bytes(log_id: str, seq: int, time: str, actor: str, run_id: str, type: str, payload: Any) -> bytes:
    """The leaf input of one entry: canonical JSON of all its fields. The position (seq) and the
    log id are part of it, so a row moved to another place or another log no longer matches."""
    return canonical_json(
        {"actor": actor, "log_id": log_id, "payload": payload, "run_id": run_id, "seq": seq, "time": time, "type": type}
    )


@dataclass(frozen=True)
class Entry:
    seq: int
    time: str
    actor: str
    run_id: str
    type: str
    payload: dict[str, Any]
    leaf_hash: str
    root: str
    key_id: str
    signature: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        return f"entry {self.seq} ({self.type}, {self.time})"


@dataclass(frozen=True)
class TreeHead:
    """A signed statement 'log `log_id` had `tree_size` entries with root `root_hash`'."""

    log_id: str
    tree_size: int
    root_hash: str
    timestamp: str
    key_id: str
    signature: str
    id: int | None = None
    origin: str = field(default="store", compare=False)
    """Where this copy came from: 'store' or the path of a heads file."""
    store: str = field(default="", compare=False)
    """For a published head: the store it was signed for, as the heads file records it (URL masked)."""

    def message(self) -> bytes:
        return head_message(self.log_id, self.tree_size, self.root_hash, self.timestamp)

    def verify(self, public_key) -> bool:
        try:
            sig = bytes.fromhex(self.signature)
        except ValueError:
            return False
        return verify_signature(public_key, self.message(), sig)

    def label(self) -> str:
        where = f"#{self.id}" if self.origin == "store" and self.id is not None else f"from {self.origin}"
        return f"head {where} (size {self.tree_size}, signed {self.timestamp})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_id": self.log_id,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "timestamp": self.timestamp,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], origin: str) -> TreeHead:
        try:
            return cls(
                str(d["log_id"]), int(d["tree_size"]), str(d["root_hash"]), str(d["timestamp"]),
                str(d["key_id"]), str(d["signature"]), None, origin, str(d.get("store", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise GovernanceError(f"{origin}: a tree head lacks or mangles field {e}") from None


def normalize_url(spec: str) -> str:
    """A store spec as a SQLAlchemy URL: a URL, or the path of a SQLite file."""
    spec = spec.strip()
    if "://" not in spec:
        return "sqlite:///" + str(Path(spec).expanduser().resolve())
    for prefix in ("postgresql://", "postgres://"):
        if spec.startswith(prefix):  # psycopg (3) is the driver we ship; plain URLs would pick psycopg2
            return "postgresql+psycopg://" + spec[len(prefix):]
    return spec


def parse_url(spec: str) -> URL:
    """A store spec as the URL to connect to: parsed by SQLAlchemy's make_url, without the parts a
    record masked as `***` (the driver then takes them from the environment: PGPASSWORD, ~/.pgpass,
    a service file). Every message shows the URL masked."""
    url = credentials.parse(normalize_url(spec))
    if url is None:
        raise GovernanceError(
            f"audit store {credentials.mask_url(spec)!r} is not a SQLAlchemy URL; write sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB (percent-encode '/', ':', '@' and '%' in a password, or better "
            "leave the password out and set PGPASSWORD or ~/.pgpass)"
        )
    if url.host and "@" in url.host:
        raise GovernanceError(
            f"audit store {credentials.mask_url(url)!r}: the password holds an unencoded '@'; write it as %40 "
            "(or better leave the password out and set PGPASSWORD or ~/.pgpass)"
        )
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise GovernanceError(
            f"audit store {credentials.mask_url(url)!r}: only sqlite and postgresql stores are supported"
        )
    return credentials.unmasked_parts(url)


class AuditStore:
    """One audit log. `create=False` opens an existing store and fails clearly when there is none."""

    def __init__(self, spec: str, *, create: bool = True):
        self.url = parse_url(spec)  # holds the credentials given: used to connect, never written or shown
        self.display_url = credentials.mask_url(self.url)
        self.backend = self.url.get_backend_name()
        if self.backend == "sqlite":
            db = self.url.database or ""
            if db and db != ":memory:":
                path = Path(db)
                if not path.exists():
                    if not create:
                        raise GovernanceError(f"no audit store at {path} (nothing was recorded there)")
                    path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = self._engine()
        except SQLAlchemyError as e:
            raise GovernanceError(f"cannot open audit store {self.display_url}: {self._why(e)}") from None
        self._known_keys: set[str] = set()
        try:
            self._open(create)
        except SQLAlchemyError as e:
            self.engine.dispose()
            raise GovernanceError(f"cannot open audit store {self.display_url}: {self._why(e)}") from None
        except BaseException:
            self.engine.dispose()
            raise

    def _engine(self):
        if self.backend != "sqlite":
            return create_engine(self.url, pool_pre_ping=True)
        engine = create_engine(self.url, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine

    def is_at(self, spec: str) -> bool:
        """Whether `spec` names this store (a URL read back from a record, credentials masked, does too)."""
        return parse_url(spec) == self.url

    def _why(self, e: BaseException) -> str:
        """The driver's message for a database error, on one line, with no credential of the URL in it
        (a driver may echo the connection string)."""
        why = credentials.scrub(one_line(getattr(e, "orig", None) or e), self.url)
        if self.backend == "postgresql" and not credentials.credentials(self.url) and "password" in why.lower():
            why += " (Steward never records a password: give it through PGPASSWORD, ~/.pgpass or a service file)"
        return why

    # ---- schema ---------------------------------------------------------------------------------

    def _open(self, create: bool) -> None:
        with self.engine.begin() as conn:
            if self.backend == "postgresql":  # two processes creating the schema at once
                conn.execute(text("SELECT pg_advisory_xact_lock(7727162)"))
            has = conn.dialect.has_table(conn, META.name)
            if not has:
                if not create:
                    raise GovernanceError(f"{self.display_url} holds no Steward audit log")
                _md.create_all(conn)
            meta = dict(conn.execute(select(META.c.key, META.c.value)).all())
            if "log_id" not in meta:
                if not create:
                    raise GovernanceError(f"{self.display_url} holds no Steward audit log (no log id)")
                meta = {"log_id": str(uuid.uuid4()), "schema": SCHEMA_VERSION, "created": utc_now()}
                conn.execute(insert(META), [{"key": k, "value": v} for k, v in meta.items()])
                conn.execute(insert(STATE).values(id=1, size=0, frontier="[]"))
        if meta.get("schema") != SCHEMA_VERSION:
            raise GovernanceError(
                f"{self.display_url}: audit schema {meta.get('schema')!r}, this Steward reads {SCHEMA_VERSION!r}"
            )
        self.log_id = meta["log_id"]
        self.created = meta.get("created", "")

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- writing --------------------------------------------------------------------------------

    def _retry(self, fn):
        """Run a write transaction; retry when SQLite reports the database busy past its timeout."""
        for attempt in range(8):
            try:
                return fn()
            except OperationalError as e:
                if "locked" not in str(e).lower() or attempt == 7:
                    raise GovernanceError(f"audit store {self.display_url}: {self._why(e)}") from None
                _time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _state(self, conn) -> merkle.Frontier:
        row = conn.execute(select(STATE.c.size, STATE.c.frontier).where(STATE.c.id == 1).with_for_update()).one_or_none()
        if row is None:
            raise GovernanceError(f"audit store {self.display_url}: the log state row is missing; the store was edited")
        try:
            return merkle.Frontier.from_hex(int(row.size), json.loads(row.frontier))
        except (ValueError, TypeError) as e:
            raise GovernanceError(
                f"audit store {self.display_url}: the log state is damaged ({e}); run `steward audit verify`"
            ) from None

    def _register_key(self, conn, signer: Signer) -> None:
        kid = signer.key_id
        if kid in self._known_keys:
            return
        if conn.execute(select(KEYS.c.key_id).where(KEYS.c.key_id == kid)).first() is None:
            conn.execute(insert(KEYS).values(key_id=kid, public_key=signer.public_pem, first_seen=utc_now()))
        self._known_keys.add(kid)

    def append(self, type: str, payload: dict[str, Any], *, actor: str, run_id: str, signer: Signer) -> Entry:
        """Append one event and return it (with its position, hashes and signature)."""
        if not type or len(type) > 64:
            raise GovernanceError(f"event type {type!r}: must be 1 to 64 characters")
        data = jsonable(payload)
        payload_text = canonical_json(data).decode()

        def tx() -> Entry:
            with self.engine.begin() as conn:
                frontier = self._state(conn)
                seq = frontier.size
                t = utc_now()
                leaf = merkle.leaf_hash(entry_bytes(self.log_id, seq, t, actor, run_id, type, data))
                frontier.append(leaf)
                root = frontier.root().hex()
                sig = signer.sign(head_message(self.log_id, seq + 1, root, t)).hex()
                self._register_key(conn, signer)
                row = dict(seq=seq, time=t, actor=actor, run_id=run_id, type=type, payload=payload_text,
                           leaf_hash=leaf.hex(), root=root, key_id=signer.key_id, signature=sig)
                try:
                    conn.execute(insert(ENTRIES).values(**row))
                except IntegrityError:
                    raise GovernanceError(
                        f"audit store {self.display_url}: entry {seq} already exists although the log state says "
                        f"{seq} entries; the store was edited (run `steward audit verify`)"
                    ) from None
                conn.execute(update(STATE).where(STATE.c.id == 1).values(size=seq + 1, frontier=json.dumps(frontier.to_hex())))
            return Entry(seq, t, actor, run_id, type, data, leaf.hex(), root, signer.key_id, sig)

        return self._retry(tx)

    def sign_head(self, signer: Signer) -> TreeHead:
        """Sign the current tree head and keep it in the store."""

        def tx() -> TreeHead:
            with self.engine.begin() as conn:
                frontier = self._state(conn)
                t = utc_now()
                root = frontier.root().hex()
                sig = signer.sign(head_message(self.log_id, frontier.size, root, t)).hex()
                self._register_key(conn, signer)
                res = conn.execute(insert(HEADS).values(tree_size=frontier.size, root_hash=root, timestamp=t,
                                                        key_id=signer.key_id, signature=sig))
                hid = res.inserted_primary_key[0]
            return TreeHead(self.log_id, frontier.size, root, t, signer.key_id, sig, int(hid), "store")

        return self._retry(tx)

    def claim(self, key: str) -> bool:
        """Record `key` once in the store's meta table: True for the one process that did (a
        one-time set-up such as seeding the risk register), False for everyone after."""

        def tx() -> bool:
            try:
                with self.engine.begin() as conn:
                    if conn.execute(select(META.c.key).where(META.c.key == key)).first() is not None:
                        return False
                    conn.execute(insert(META).values(key=key, value=utc_now()))
                return True
            except IntegrityError:
                return False

        return self._retry(tx)

    # ---- reading --------------------------------------------------------------------------------

    def _read(self, fn):
        try:
            with self.engine.connect() as conn:
                return fn(conn)
        except OperationalError as e:
            raise GovernanceError(f"audit store {self.display_url}: {self._why(e)}") from None

    def size(self) -> int:
        return int(self._read(lambda c: c.execute(select(func.count()).select_from(ENTRIES)).scalar_one()))

    def state(self) -> tuple[int, str]:
        """(size, root) as the store's state row says (not verified)."""
        def q(conn):
            return self._state(conn)
        fr = self._read(q)
        return fr.size, fr.root().hex()

    def snapshot(self) -> tuple[list[Any], tuple[int, str] | None, list[TreeHead]]:
        """Entry rows (as stored), the state row's (size, frontier text) (None: the row was deleted)
        and the signed heads, read in one transaction, so a verification of a store that is being
        appended to sees one consistent state."""

        def q(conn):
            rows = conn.execute(select(ENTRIES).order_by(ENTRIES.c.seq)).all()
            state = conn.execute(select(STATE.c.size, STATE.c.frontier).where(STATE.c.id == 1)).one_or_none()
            heads = conn.execute(select(HEADS).order_by(HEADS.c.id)).all()
            return rows, (None if state is None else tuple(state)), [TreeHead(self.log_id, int(r.tree_size), r.root_hash, r.timestamp, r.key_id,
                                         r.signature, int(r.id)) for r in heads]

        try:
            with self.engine.connect() as conn:
                if self.backend == "postgresql":
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    return q(conn)
        except OperationalError as e:
            raise GovernanceError(f"audit store {self.display_url}: {self._why(e)}") from None

    def raw_rows(self) -> list[Any]:
        """Every entry row as stored, in seq order, payload text unparsed (for verification)."""
        return self._read(lambda c: c.execute(select(ENTRIES).order_by(ENTRIES.c.seq)).all())

    def entries(
        self, *, run_id: str | None = None, types: list[str] | tuple[str, ...] | None = None,
        start: int = 0, limit: int | None = None,
    ) -> list[Entry]:
        q = select(ENTRIES).where(ENTRIES.c.seq >= start).order_by(ENTRIES.c.seq)
        if run_id is not None:
            q = q.where(ENTRIES.c.run_id == run_id)
        if types:
            q = q.where(ENTRIES.c.type.in_(list(types)))
        if limit is not None:
            q = q.limit(limit)
        return [row_to_entry(r) for r in self._read(lambda c: c.execute(q).all())]

    def entry(self, seq: int) -> Entry | None:
        rows = self._read(lambda c: c.execute(select(ENTRIES).where(ENTRIES.c.seq == seq)).all())
        return row_to_entry(rows[0]) if rows else None

    def heads(self) -> list[TreeHead]:
        rows = self._read(lambda c: c.execute(select(HEADS).order_by(HEADS.c.id)).all())
        return [TreeHead(self.log_id, int(r.tree_size), r.root_hash, r.timestamp, r.key_id, r.signature, int(r.id))
                for r in rows]

    def public_keys(self) -> dict[str, Any]:
        """Public keys recorded in the store, by key id (untrusted: anyone who can write the store can add one)."""
        rows = self._read(lambda c: c.execute(select(KEYS.c.key_id, KEYS.c.public_key)).all())
        out = {}
        for kid, pem in rows:
            try:
                out[kid] = load_public_key(pem, f"key {kid[:16]} in {self.display_url}")
            except GovernanceError:
                continue
        return out


def row_to_entry(r) -> Entry:
    try:
        payload = json.loads(r.payload)
    except (TypeError, ValueError):
        payload = {"_unparseable_payload": str(r.payload)}
    return Entry(int(r.seq), r.time, r.actor, r.run_id, r.type, payload, r.leaf_hash, r.root, r.key_id, r.signature)


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)


def _sqlite_begin(conn) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")

