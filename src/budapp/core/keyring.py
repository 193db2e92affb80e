"""Data-encryption keys for secrets at rest (AES-256-GCM), identified by key id so that keys
can rotate: every ciphertext names the key that sealed it.

Sources, first found wins:
- `BUDAPP_ENCRYPTION_KEYS`: `kid:base64key[,kid:base64key...]`, the first being primary;
- `BUDAPP_ENCRYPTION_KEY_FILE`: a keyring file (below);
- embedded default: `<data_dir>/encryption_keys.json`, generated with 0600 permissions on
  first start.

A keyring file is JSON: `{"primary": "<kid>", "keys": {"<kid>": "<base64 32 bytes>", ...}}`.
A file-backed keyring is re-read when a ciphertext names a key it does not know, so replicas
pick up a key that `budapp keys rotate` added without restarting."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
# Every ciphertext is stored next to its key id, in a column of 32 characters.
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")


class KeyringError(Exception):
    """The configured keys are missing, malformed, or do not match the stored ciphertexts."""


class DecryptionError(Exception):
    """One ciphertext cannot be opened: corrupted, truncated, or sealed by an unknown key."""


@dataclass(frozen=True)
class Sealed:
    key_id: str
    ciphertext: str  # base64 of nonce || ciphertext || tag


class Keyring:
    def __init__(self, keys: dict[str, bytes], primary: str, source: Path | None = None) -> None:
        if primary not in keys:
            raise KeyringError(f"the primary key {primary!r} is not in the keyring")
        for key_id, key in keys.items():
            if not _KEY_ID.fullmatch(key_id):
                raise KeyringError(
                    f"key id {key_id!r} must be 1 to 32 letters, digits, '.', '_' or '-'"
                )
            if len(key) != KEY_BYTES:
                raise KeyringError(f"key {key_id!r} must be {KEY_BYTES} bytes (AES-256)")
        self._keys = dict(keys)
        self.primary = primary
        self.source = source
        self._lock = threading.Lock()

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def key_bytes(self, key_id: str) -> bytes:
        return self._keys[key_id]

    def seal(self, plaintext: bytes, associated: bytes) -> Sealed:
        nonce = secrets.token_bytes(NONCE_BYTES)
        body = AESGCM(self._keys[self.primary]).encrypt(nonce, plaintext, associated)
        return Sealed(self.primary, base64.b64encode(nonce + body).decode())

    def open(self, sealed: Sealed, associated: bytes) -> bytes:
        key = self._keys.get(sealed.key_id) or self._reload_for(sealed.key_id)
        if key is None:
            raise DecryptionError(f"sealed with key {sealed.key_id!r}, which is not configured")
        try:
            raw = base64.b64decode(sealed.ciphertext, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecryptionError("the ciphertext is not valid base64") from exc
        if len(raw) < NONCE_BYTES + 16:
            raise DecryptionError("the ciphertext is truncated")
        try:
            return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated)
        except InvalidTag as exc:
            raise DecryptionError("the ciphertext is corrupted or the key is wrong") from exc

    def _reload_for(self, key_id: str) -> bytes | None:
        if self.source is None:
            return None
        with self._lock:
            fresh = read_keyring_file(self.source)
            self._keys.update(fresh._keys)
            self.primary = fresh.primary
        return self._keys.get(key_id)


def load_keyring(inline: str | None, path: Path | None, data_dir: Path) -> tuple[Keyring, bool]:
    """The configured keyring, or the embedded one. Returns (keyring, generated): generated
    is True when the embedded file was created just now, so the caller can refuse to go on
    if ciphertexts already exist (they were sealed by a key that is now lost)."""
    if inline:
        return parse_inline(inline), False
    if path is not None:
        if not path.exists():
            raise KeyringError(f"BUDAPP_ENCRYPTION_KEY_FILE {path} does not exist")
        return read_keyring_file(path), False
    default = data_dir / "encryption_keys.json"
    if default.exists():
        return read_keyring_file(default), False
    key_id = new_key_id()
    write_keyring_file(default, {key_id: secrets.token_bytes(KEY_BYTES)}, key_id, exclusive=True)
    return read_keyring_file(default), True


def parse_inline(value: str) -> Keyring:
    keys: dict[str, bytes] = {}
    order: list[str] = []
    for part in value.split(","):
        key_id, _, encoded = part.strip().partition(":")
        if not key_id or not encoded:
            raise KeyringError(
                "BUDAPP_ENCRYPTION_KEYS must look like kid:base64key[,kid:base64key]"
            )
        if key_id in keys:
            # Two values for one key id: which one sealed a stored ciphertext is unknowable.
            raise KeyringError(f"key id {key_id!r} appears twice in BUDAPP_ENCRYPTION_KEYS")
        keys[key_id] = _decode(key_id, encoded)
        order.append(key_id)
    return Keyring(keys, order[0])


def read_keyring_file(path: Path) -> Keyring:
    try:
        document = json.loads(path.read_text())
        keys = {kid: _decode(kid, encoded) for kid, encoded in document["keys"].items()}
        return Keyring(keys, document["primary"], source=path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KeyringError(f"cannot read the keyring file {path}: {exc}") from exc


def write_keyring_file(
    path: Path, keys: dict[str, bytes], primary: str, *, exclusive: bool = False
) -> None:
    """Writes atomically (temporary file, then rename/link) with 0600 permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "primary": primary,
        "keys": {kid: base64.b64encode(key).decode() for kid, key in keys.items()},
    }
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        if exclusive:
            try:
                os.link(temporary, path)
            except FileExistsError:
                return
        else:
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def new_key_id() -> str:
    return "k" + secrets.token_hex(4)


def _decode(key_id: str, encoded: str) -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyringError(f"key {key_id!r} is not valid base64") from exc
    if len(key) != KEY_BYTES:
        raise KeyringError(f"key {key_id!r} must decode to {KEY_BYTES} bytes")
    return key
