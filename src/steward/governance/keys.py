"""Ed25519 signing keys (ISO/IEC 27001 A.8.24): one key pair per workspace, created on first use,
and one personal key pair per person (`steward keys create`), kept in that person's own config
folder, with which they sign their approvals and registry changes.

The private key file is written with mode 0600 and refused when others can read it; it is never
logged and never copied into a run directory (only its public half and key id travel). A key id
is the SHA-256 of the raw 32-byte public key, in hex.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from steward.governance._util import GovernanceError
from steward.io import atomic_write_text

KEY_ENV = "STEWARD_SIGNING_KEY"
USER_KEY_ENV = "STEWARD_USER_KEY"


def personal_key_path(configured: str = "") -> Path:
    """A person's own private key: `configured` (--key), else $STEWARD_USER_KEY, else
    $XDG_CONFIG_HOME/steward/personal_key.pem (~/.config when XDG_CONFIG_HOME is unset)."""
    if configured:
        return Path(configured).expanduser()
    if os.environ.get(USER_KEY_ENV):
        return Path(os.environ[USER_KEY_ENV]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(base).expanduser() / "steward" / "personal_key.pem"


def public_key_file(private_path: Path) -> Path:
    """Where create_signer writes the public half of the key at `private_path`."""
    return private_path.with_name(private_path.name.removesuffix(".pem") + ".pub")


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_key(pem: str | bytes, where: str = "public key") -> Ed25519PublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise GovernanceError(f"{where}: not a PEM public key ({e})") from None
    except UnsupportedAlgorithm as e:  # valid PEM of a kind `cryptography` cannot load (an SM2 key, ...)
        raise GovernanceError(f"{where}: not an Ed25519 public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise GovernanceError(f"{where}: not an Ed25519 public key (got {type(key).__name__})")
    return key


def load_public_key_file(path: str | Path, flag: str = "--public-key") -> Ed25519PublicKey:
    p = Path(path).expanduser()
    if not p.is_file():
        raise GovernanceError(f"{flag}: no such file {str(p)!r}")
    return load_public_key(p.read_bytes(), str(p))


def verify_signature(public_key: Ed25519PublicKey, message: bytes, signature: bytes) -> bool:
    try:
        public_key.verify(signature, message)
        return True
    except InvalidSignature:
        return False


@dataclass
class Signer:
    """A loaded private key. `path` is where it lives; the key material stays in this object."""

    private_key: Ed25519PrivateKey
    path: Path | None = None

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    @property
    def public_pem(self) -> str:
        return public_pem(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    def __repr__(self) -> str:  # never show key material
        return f"Signer(key_id={self.key_id[:16]}..., path={str(self.path)!r})"


def _check_mode(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise GovernanceError(
            f"signing key {path} can be read by other users (mode {mode:04o}); run `chmod 600 {path}`"
        )


def load_signer(path: str | Path) -> Signer:
    """Load an existing Ed25519 private key (PEM, PKCS#8, unencrypted)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise GovernanceError(f"signing key {str(p)!r} does not exist; point governance.key_path or ${KEY_ENV} at an Ed25519 PEM key")
    _check_mode(p)
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise GovernanceError(f"signing key {p}: not an unencrypted PEM private key ({type(e).__name__})") from None
    except UnsupportedAlgorithm as e:
        raise GovernanceError(f"signing key {p}: not an Ed25519 key ({e}); create one with "
                              "`openssl genpkey -algorithm ed25519`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise GovernanceError(f"signing key {p}: not an Ed25519 key (got {type(key).__name__}); create one with "
                              "`openssl genpkey -algorithm ed25519`")
    return Signer(key, p)


def create_signer(path: str | Path) -> Signer:
    """Create a key at `path` unless one is there (then load it): safe when two processes race,
    since the file appears complete, with mode 0600, in one link()."""
    p = Path(path).expanduser()
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:  # a file where a folder should be, no permission
        raise GovernanceError(f"cannot write the key {p}: {e.strerror} ({e.filename})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, p)
        except FileExistsError:
            return load_signer(p)
    finally:
        tmp.unlink(missing_ok=True)
    signer = Signer(key, p)
    atomic_write_text(public_key_file(p), signer.public_pem, mode=0o644)
    return signer


def load_or_create_signer(path: str | Path) -> Signer:
    p = Path(path).expanduser()
    return load_signer(p) if p.exists() else create_signer(p)


def load_personal_signer(path: str, who: str) -> Signer:
    """`who`'s personal private key (--key PATH, else personal_key_path()); one line naming the fix when absent."""
    p = personal_key_path(path)
    if not p.is_file():
        raise GovernanceError(f"no personal key for {who!r} at {p}: create one with `steward keys create` (as "
                              f"{who}, on their own account) and have an admin register it with `steward keys "
                              f"register {who} {public_key_file(p)}`")
    return load_signer(p)


def personal_signer_if_any(path: str, who: str) -> Signer | None:
    """The personal key given with --key (which must exist), else the one at the default place if there is one."""
    if path or personal_key_path().is_file():
        return load_personal_signer(path, who)
    return None
