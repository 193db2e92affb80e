"""The keyring: where keys come from, what a malformed one says, and sealing with them."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from budapp.core.keyring import (
    KEY_BYTES,
    DecryptionError,
    Keyring,
    KeyringError,
    Sealed,
    load_keyring,
    parse_inline,
    read_keyring_file,
    write_keyring_file,
)

KEY_1 = bytes(range(32))
KEY_2 = bytes(range(32, 64))
AD = b"budapp:test"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def write_json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document))
    return path


# --- inline keys (BUDAPP_ENCRYPTION_KEYS) ----------------------------------------------------


def test_inline_single_key() -> None:
    keyring = parse_inline(f"k1:{b64(KEY_1)}")
    assert keyring.primary == "k1"
    assert keyring.key_ids == {"k1"}
    assert keyring.key_bytes("k1") == KEY_1
    assert keyring.source is None


def test_inline_first_key_is_primary_and_spaces_are_tolerated() -> None:
    keyring = parse_inline(f" knew:{b64(KEY_2)} , kold:{b64(KEY_1)} ")
    assert keyring.primary == "knew"
    assert keyring.key_ids == {"knew", "kold"}
    assert keyring.key_bytes("kold") == KEY_1


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "kid:base64key"),
        ("k1", "kid:base64key"),
        (f":{b64(KEY_1)}", "kid:base64key"),
        ("k1:", "kid:base64key"),
        (f"k1:{b64(KEY_1)},", "kid:base64key"),
        ("k1:not base64!", "not valid base64"),
        (f"k1:{b64(KEY_1)[:-2]}", "not valid base64"),
        (f"k1:{b64(KEY_1[:16])}", "32 bytes"),
        (f"k1:{b64(KEY_1 + b'x')}", "32 bytes"),
        (f"k1:{b64(KEY_1)},k2:{b64(b'short')}", "'k2'"),
        (f"k1:{b64(KEY_1)},k1:{b64(KEY_2)}", "'k1'"),
        (f"{'k' * 33}:{b64(KEY_1)}", "key id"),
        (f"k 1:{b64(KEY_1)}", "key id"),
    ],
    ids=[
        "empty",
        "no colon",
        "no key id",
        "no key",
        "trailing comma",
        "bad base64",
        "broken padding",
        "16 bytes",
        "33 bytes",
        "second key short",
        "duplicate key id",
        "key id too long",
        "key id with a space",
    ],
)
def test_malformed_inline_keys_are_refused(value: str, says: str) -> None:
    with pytest.raises(KeyringError, match=says):
        parse_inline(value)


def test_keyring_needs_its_primary() -> None:
    with pytest.raises(KeyringError, match="primary"):
        Keyring({"k1": KEY_1}, "k2")


def test_keyring_refuses_keys_of_the_wrong_length() -> None:
    with pytest.raises(KeyringError, match="32 bytes"):
        Keyring({"k1": KEY_1[:31]}, "k1")


# --- keyring files ---------------------------------------------------------------------------


def test_keyring_file_is_read(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "keys.json", {"primary": "k2", "keys": {"k1": b64(KEY_1), "k2": b64(KEY_2)}}
    )
    keyring = read_keyring_file(path)
    assert keyring.primary == "k2"
    assert keyring.key_bytes("k1") == KEY_1
    assert keyring.source == path


@pytest.mark.parametrize(
    "document",
    [
        {"keys": {"k1": b64(KEY_1)}},
        {"primary": "k2", "keys": {"k1": b64(KEY_1)}},
        {"primary": "k1"},
        {"primary": "k1", "keys": [b64(KEY_1)]},
        {"primary": "k1", "keys": {"k1": "***"}},
        {"primary": "k1", "keys": {"k1": b64(KEY_1[:24])}},
        {"primary": "k1", "keys": {"k1": 42}},
        {"primary": ["k1"], "keys": {"k1": b64(KEY_1)}},
        {"primary": "k1", "keys": {}},
        ["k1", b64(KEY_1)],
    ],
    ids=[
        "no primary",
        "primary missing from keys",
        "no keys",
        "keys a list",
        "bad base64",
        "24-byte key",
        "key a number",
        "primary a list",
        "empty keys",
        "not an object",
    ],
)
def test_malformed_keyring_file_is_refused(tmp_path: Path, document: object) -> None:
    path = write_json(tmp_path / "keys.json", document)
    with pytest.raises(KeyringError):
        read_keyring_file(path)


@pytest.mark.parametrize("content", ["", "{not json", "null"])
def test_unparseable_keyring_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(KeyringError, match=str(path)):
        read_keyring_file(path)


def test_write_then_read_round_trips_with_owner_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "keys.json"
    write_keyring_file(path, {"k1": KEY_1, "k2": KEY_2}, "k1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keyring = read_keyring_file(path)
    assert (keyring.primary, keyring.key_bytes("k2")) == ("k1", KEY_2)
    assert [p.name for p in path.parent.iterdir()] == ["keys.json"]


def test_exclusive_write_never_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write_keyring_file(path, {"k1": KEY_1}, "k1", exclusive=True)
    write_keyring_file(path, {"k2": KEY_2}, "k2", exclusive=True)
    assert read_keyring_file(path).primary == "k1"
    write_keyring_file(path, {"k2": KEY_2}, "k2")
    assert read_keyring_file(path).primary == "k2"
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]


# --- where keys come from --------------------------------------------------------------------


def test_embedded_keyring_is_generated_once_with_0600(tmp_path: Path) -> None:
    keyring, generated = load_keyring(None, None, tmp_path)
    path = tmp_path / "encryption_keys.json"
    assert generated is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keyring.source == path
    assert len(keyring.key_bytes(keyring.primary)) == KEY_BYTES

    again, generated_again = load_keyring(None, None, tmp_path)
    assert generated_again is False
    assert again.primary == keyring.primary
    assert again.key_bytes(again.primary) == keyring.key_bytes(keyring.primary)


def test_embedded_keyring_is_generated_with_0600_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        load_keyring(None, None, tmp_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "encryption_keys.json").stat().st_mode) == 0o600


def test_each_embedded_keyring_is_new(tmp_path: Path) -> None:
    first, _ = load_keyring(None, None, tmp_path / "a")
    second, _ = load_keyring(None, None, tmp_path / "b")
    assert first.key_bytes(first.primary) != second.key_bytes(second.primary)


def test_inline_keys_win_over_a_file_and_the_embedded_keyring(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write_keyring_file(path, {"kfile": KEY_2}, "kfile")
    keyring, generated = load_keyring(f"kenv:{b64(KEY_1)}", path, tmp_path)
    assert (keyring.primary, generated) == ("kenv", False)
    assert not (tmp_path / "encryption_keys.json").exists()


def test_key_file_wins_over_the_embedded_keyring(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write_keyring_file(path, {"kfile": KEY_2}, "kfile")
    keyring, generated = load_keyring(None, path, tmp_path)
    assert (keyring.primary, generated) == ("kfile", False)
    assert not (tmp_path / "encryption_keys.json").exists()


def test_missing_key_file_is_refused_rather_than_replaced(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(KeyringError, match="does not exist"):
        load_keyring(None, path, tmp_path)
    assert not path.exists()
    assert not (tmp_path / "encryption_keys.json").exists()


def test_malformed_embedded_keyring_is_refused_not_regenerated(tmp_path: Path) -> None:
    path = tmp_path / "encryption_keys.json"
    path.write_text("{}")
    with pytest.raises(KeyringError):
        load_keyring(None, None, tmp_path)
    assert path.read_text() == "{}"


# --- sealing ---------------------------------------------------------------------------------


def test_seal_uses_the_primary_and_opens_with_any_known_key() -> None:
    old = Keyring({"kold": KEY_1}, "kold")
    sealed_old = old.seal(b"secret", AD)
    both = Keyring({"kold": KEY_1, "knew": KEY_2}, "knew")
    sealed_new = both.seal(b"secret", AD)
    assert sealed_new.key_id == "knew"
    assert both.open(sealed_old, AD) == b"secret"
    assert both.open(sealed_new, AD) == b"secret"
    assert b"secret" not in base64.b64decode(sealed_new.ciphertext)


def test_same_plaintext_seals_differently_each_time() -> None:
    keyring = Keyring({"k1": KEY_1}, "k1")
    assert keyring.seal(b"secret", AD).ciphertext != keyring.seal(b"secret", AD).ciphertext


def _bad(sealed: Sealed, what: str) -> Sealed:
    raw = base64.b64decode(sealed.ciphertext)
    return {
        "flipped": Sealed(sealed.key_id, b64(raw[:-1] + bytes([raw[-1] ^ 1]))),
        "truncated": Sealed(sealed.key_id, b64(raw[:20])),
        "not base64": Sealed(sealed.key_id, "%%%" + sealed.ciphertext),
        "unknown key": Sealed("kother", sealed.ciphertext),
        "other key, same id": sealed,
    }[what]


@pytest.mark.parametrize(
    "what", ["flipped", "truncated", "not base64", "unknown key", "other key, same id"]
)
def test_ciphertext_that_cannot_be_opened_raises_decryption_error(what: str) -> None:
    keyring = Keyring({"k1": KEY_1}, "k1")
    sealed = keyring.seal(b"secret", AD)
    opener = Keyring({"k1": KEY_2}, "k1") if what == "other key, same id" else keyring
    with pytest.raises(DecryptionError):
        opener.open(_bad(sealed, what), AD)


def test_ciphertext_is_bound_to_its_associated_data() -> None:
    keyring = Keyring({"k1": KEY_1}, "k1")
    sealed = keyring.seal(b"secret", b"budapp:credential:a")
    with pytest.raises(DecryptionError):
        keyring.open(sealed, b"budapp:credential:b")


def test_file_keyring_learns_a_key_added_after_it_was_loaded(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write_keyring_file(path, {"kold": KEY_1}, "kold")
    running = read_keyring_file(path)
    # Another process (`budapp keys rotate`) adds a key and seals with it.
    write_keyring_file(path, {"kold": KEY_1, "knew": KEY_2}, "knew")
    sealed = read_keyring_file(path).seal(b"secret", AD)
    assert running.open(sealed, AD) == b"secret"
    assert running.primary == "knew"
    assert running.key_ids == {"kold", "knew"}


def test_inline_keyring_does_not_look_for_new_keys(tmp_path: Path) -> None:
    sealed = Keyring({"knew": KEY_2}, "knew").seal(b"secret", AD)
    with pytest.raises(DecryptionError, match="not configured"):
        parse_inline(f"kold:{b64(KEY_1)}").open(sealed, AD)
