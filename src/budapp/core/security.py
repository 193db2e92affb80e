"""Password hashing (argon2id) and the JWT signing key.

Hashing runs in a worker thread: argon2 takes tens of milliseconds of CPU by design and would
otherwise stall every other request on the event loop (argon2-cffi releases the GIL)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher


class PasswordHasher:
    def __init__(self, *, time_cost: int, memory_kib: int) -> None:
        self._context = PasswordHash((Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib),))
        # Verified against when an account does not exist, so that a login for an unknown
        # e-mail costs the same time as one with a wrong password.
        self._decoy = self._context.hash(os.urandom(16).hex())

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._context.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> tuple[bool, str | None]:
        """Returns (valid, new_hash); new_hash is set when the stored hash used older
        parameters and should be replaced."""
        if password_hash is None:
            await asyncio.to_thread(self._context.verify, password, self._decoy)
            return False, None
        return await asyncio.to_thread(self._context.verify_and_update, password, password_hash)


@dataclass(frozen=True)
class SigningKey:
    private_key: Ed25519PrivateKey
    kid: str

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        return {**_okp_jwk(self.public_key), "kid": self.kid, "alg": "EdDSA", "use": "sig"}


def load_signing_key(pem: bytes | None, path: Path | None, data_dir: Path) -> SigningKey:
    """The configured key (inline PEM, then file) or, on the embedded default, one generated on
    first start and kept in the data directory. Replicas must share one configured key."""
    if pem is None:
        key_path = path or data_dir / "jwt_signing_key.pem"
        if path is None and not key_path.exists():
            _generate_key_file(key_path)
        pem = key_path.read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the JWT signing key must be an Ed25519 private key in PEM form")
    return SigningKey(private_key=key, kid=_thumbprint(key.public_key()))


def _generate_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Written aside, then linked into place: two processes starting together must neither
    # each use a different key nor read a half-written file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


def _okp_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
    }


def _thumbprint(public_key: Ed25519PublicKey) -> str:
    # RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
    canonical = json.dumps(_okp_jwk(public_key), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hash_token(token: str) -> str:
    """Digest under which high-entropy opaque tokens (refresh tokens) are stored."""
    return hashlib.sha256(token.encode()).hexdigest()
