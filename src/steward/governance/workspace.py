"""A workspace: the folder that holds what outlives one run.

    WORKSPACE/                 (governance.workspace, else $STEWARD_WORKSPACE, else ~/.steward)
      keys/signing_key.pem     Ed25519 private key, mode 0600, created on first use
      keys/signing_key.pub     its public half (give it to auditors)
      trusted_keys/*.pub       other public keys whose signatures verification accepts
      heads.jsonl              every signed tree head, one JSON per line (published outside the store)
      policy.toml              the policy approve and release apply, always enforced (an admin's file;
                               the shipped default pack when absent): a run's own governance.policy and
                               governance.enforce govern only its training stages
      audit.db                 the workspace store: roles and the risk register (and runs, with
                               governance.store = "workspace")

Tree heads in heads.jsonl are what catches a store that was rolled back, cut short, or replaced by a
log rebuilt under a new log id: verification compares the store against them. Copy the file (or point governance.publish_heads at a share)
to publish heads where whoever edits the store cannot reach.
"""

from __future__ import annotations

import fcntl
import getpass
import os
from pathlib import Path

from steward.governance._util import GovernanceError, canonical_json, check_name
from steward.governance.access import Registry, load_registry
from steward.governance.keys import (
    KEY_ENV,
    Signer,
    key_id,
    load_or_create_signer,
    load_public_key,
    load_public_key_file,
    load_signer,
)
from steward.governance.store import AuditStore, TreeHead, normalize_url
from steward.io import JsonlError, read_jsonl

WORKSPACE_ENV = "STEWARD_WORKSPACE"
ACTOR_ENV = "STEWARD_ACTOR"


def default_actor(configured: str = "") -> str:
    """Who is acting: the configured name, else $STEWARD_ACTOR, else the OS user."""
    if configured:
        return check_name(configured, "--actor")
    if os.environ.get(ACTOR_ENV):
        return check_name(os.environ[ACTOR_ENV], ACTOR_ENV)
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid:{os.getuid()}"


class Workspace:
    def __init__(self, root: str | Path = "", key_path: str = "", store: str = ""):
        base = root or os.environ.get(WORKSPACE_ENV) or "~/.steward"
        self.root = Path(base).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise GovernanceError(f"governance.workspace: {self.root} is a file, not a folder")
        self.configured_key = key_path or os.environ.get(KEY_ENV, "")
        self.store_spec = store
        self._signer: Signer | None = None

    # ---- paths ----------------------------------------------------------------------------------

    @property
    def key_path(self) -> Path:
        if self.configured_key:
            return Path(self.configured_key).expanduser()
        return self.root / "keys" / "signing_key.pem"

    @property
    def public_key_path(self) -> Path:
        return self.root / "keys" / "signing_key.pub"

    @property
    def heads_file(self) -> Path:
        return self.root / "heads.jsonl"

    @property
    def store_url(self) -> str:
        """The store for workspace records (roles, risks): the configured shared store, else audit.db here."""
        if self.store_spec and self.store_spec != "workspace":
            return normalize_url(self.store_spec)
        return "sqlite:///" + str(self.root / "audit.db")

    def run_store_url(self, run_dir: str | Path) -> str:
        """The store a run records into: RUN_DIR/governance/audit.db unless a shared store is configured."""
        if not self.store_spec:
            return "sqlite:///" + str(Path(run_dir).resolve() / "governance" / "audit.db")
        return self.store_url

    @property
    def policy_path(self) -> Path:
        return self.root / "policy.toml"

    def gate_policy(self):
        """The policy of the model.approve and model.release gates: WORKSPACE/policy.toml, else (when there
        is nothing by that name) the default pack. A policy.toml that is there but is no file (a folder, a
        link to a share that is gone) is an error: falling back would drop the admin's stricter rules."""
        from steward.governance.policy import load_policy

        p = self.policy_path
        if not os.path.lexists(p):
            return load_policy("default")
        if not p.is_file():
            raise GovernanceError(f"{p} is not a policy file (a folder, or a link to a missing file); approve and "
                                  "release do not fall back to the default pack: point it at the workspace's policy "
                                  "or remove it")
        return load_policy(str(p))

    def ensure(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:  # a file where a folder should be, no permission
            raise GovernanceError(f"governance.workspace: cannot create {self.root} ({e.strerror})") from None

    # ---- keys -----------------------------------------------------------------------------------

    def signer(self) -> Signer:
        """The signing key: the configured one (which must exist) or the workspace's (created on first use)."""
        if self._signer is None:
            if self.configured_key:
                self._signer = load_signer(self.key_path)
            else:
                self.ensure()
                self._signer = load_or_create_signer(self.key_path)
        return self._signer

    def trusted_keys(self, extra_files: list[str] | tuple[str, ...] = ()) -> dict[str, object]:
        """Public keys verification trusts, by key id: the files given by the user (then only those),
        else this workspace's key and trusted_keys/*. Nothing is created here."""
        keys: dict[str, object] = {}
        for f in extra_files:
            pub = load_public_key_file(f)
            keys[key_id(pub)] = pub
        if keys:
            return keys
        if self.public_key_path.is_file() and not self.configured_key:
            pub = load_public_key(self.public_key_path.read_bytes(), str(self.public_key_path))
            keys[key_id(pub)] = pub
        elif self.key_path.is_file():
            try:
                s = load_signer(self.key_path)
                keys[s.key_id] = s.public_key
            except GovernanceError:
                pass
        tdir = self.root / "trusted_keys"
        if tdir.is_dir():
            for f in sorted(tdir.iterdir()):
                if f.suffix in (".pub", ".pem") and f.is_file():
                    pub = load_public_key(f.read_bytes(), str(f))
                    keys[key_id(pub)] = pub
        return keys

    # ---- published heads ------------------------------------------------------------------------

    def publish_head(self, head: TreeHead, store_display: str, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
        """Append `head` to heads.jsonl (and to every file in `extra`); returns the paths written."""
        self.ensure()
        line = canonical_json({**head.to_dict(), "store": store_display}).decode()
        written = []
        for path in [self.heads_file, *(Path(p).expanduser() for p in extra)]:
            append_head_line(path, line)
            written.append(str(path))
        return written

    def published_heads(self, extra: list[str] | tuple[str, ...] = ()) -> list[TreeHead]:
        """Every tree head in heads.jsonl (when there is one) and in the files `extra` (each must
        exist), of every log: verification needs the heads of other logs too, to see a store whose
        log was replaced under a new log id."""
        heads = read_heads(self.heads_file) if self.heads_file.is_file() else []
        for f in extra:
            heads += read_heads(f)
        return heads

    def registry(self, trusted_keys: dict[str, object]) -> tuple[Registry, str]:
        """The role registry of the workspace store, read without creating it (empty when there is no
        store), and registry_problem's answer for it."""
        url = self.store_url
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
            return Registry(), ""
        store = AuditStore(url, create=False)
        try:
            return load_registry(store), self.registry_problem(store, trusted_keys)
        finally:
            store.close()

    def registry_problem(self, store: AuditStore, trusted_keys: dict[str, object]) -> str:
        """Why the registry of `store`, the workspace store, cannot be trusted ('' when it can): the store
        does not verify with `trusted_keys` against heads.jsonl. A registry read from an edited store (a
        key.revoked or role.revoked row deleted) would count approvals it must not."""
        from steward.governance.verify import verify_store

        res = verify_store(store, trusted_keys, self.published_heads())
        return "" if res.ok else (f"the workspace store {res.store} does not verify, so its role registry cannot be "
                                  f"trusted: {res.error}")

    def open_store(self) -> AuditStore:
        """The workspace store, with the default risk register on first use."""
        from steward.governance.risk import ensure_default_register

        if not self.store_spec or self.store_spec == "workspace":
            self.ensure()
        store = AuditStore(self.store_url)
        try:
            ensure_default_register(store, self.signer())
        except BaseException:
            store.close()
            raise
        return store


def append_head_line(path: Path, line: str) -> None:
    """Append one line under an exclusive lock and fsync it: heads files only ever grow."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_heads(path: str | Path) -> list[TreeHead]:
    """Every tree head of a heads file (of every log); a bad line is an error."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise GovernanceError(f"--against: no such heads file {str(p)!r}")
    heads = []
    try:
        for n, d in read_jsonl(p):
            if not isinstance(d, dict):
                raise GovernanceError(f"{p}:{n}: not a JSON object")
            heads.append(TreeHead.from_dict(d, f"{p}:{n}"))
    except JsonlError as e:
        raise GovernanceError(f"{p}:{e.lineno}: not a JSON tree head ({e.msg})") from None
    return heads
