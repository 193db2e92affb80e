from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from budapp.core.security import PasswordHasher, load_signing_key


def test_signing_key_is_generated_once_with_private_permissions(tmp_path: Path) -> None:
    first = load_signing_key(None, None, tmp_path)
    key_file = tmp_path / "jwt_signing_key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    second = load_signing_key(None, None, tmp_path)
    assert first.kid == second.kid
    assert list(tmp_path.iterdir()) == [key_file]


def test_configured_key_is_used(tmp_path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = load_signing_key(pem, None, tmp_path)
    assert key.public_jwk()["crv"] == "Ed25519"
    assert not (tmp_path / "jwt_signing_key.pem").exists()


def test_non_ed25519_key_is_refused(tmp_path: Path) -> None:
    pem = generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="Ed25519"):
        load_signing_key(pem, None, tmp_path)


def test_missing_configured_key_file_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_signing_key(None, tmp_path / "absent.pem", tmp_path)


async def test_password_hash_is_argon2id_and_verifies() -> None:
    hasher = PasswordHasher(time_cost=1, memory_kib=64)
    hashed = await hasher.hash("s3cret-pass")
    assert hashed.startswith("$argon2id$")
    assert "s3cret-pass" not in hashed
    assert (await hasher.verify("s3cret-pass", hashed))[0]
    assert not (await hasher.verify("other", hashed))[0]
    assert not (await hasher.verify("s3cret-pass", None))[0]


async def test_outdated_hash_parameters_are_upgraded() -> None:
    old = await PasswordHasher(time_cost=1, memory_kib=64).hash("s3cret-pass")
    valid, new_hash = await PasswordHasher(time_cost=2, memory_kib=128).verify("s3cret-pass", old)
    assert valid
    assert new_hash is not None
    assert "t=2" in new_hash
