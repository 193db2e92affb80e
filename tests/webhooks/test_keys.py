"""Webhook secrets are sealed with the keyring: a key that still seals one cannot be retired,
and a rotated webhook secret moves to the current primary key."""

from __future__ import annotations

import secrets

import pytest

from budapp.admin import retire_key
from budapp.core.errors import Conflict
from budapp.core.keyring import KEY_BYTES, read_keyring_file, write_keyring_file
from tests.credentials.test_keys import Install, admin_headers, install, running

__all__ = ["install"]


async def test_a_key_sealing_a_webhook_secret_is_not_retired_until_it_is_rotated(
    install: Install,
) -> None:
    settings = install.settings()
    async with running(settings) as (_, client):
        headers = await admin_headers(client, settings)
        created = await client.post(
            "/webhooks",
            json={"url": "https://hooks.example.com/x", "events": ["*"]},
            headers=headers,
        )
        assert created.status_code == 201
    old_ring = read_keyring_file(install.keyring_file)
    old = old_ring.primary
    write_keyring_file(
        install.keyring_file,
        {old: old_ring.key_bytes(old), "knew": secrets.token_bytes(KEY_BYTES)},
        "knew",
    )

    with pytest.raises(Conflict, match="Webhook secrets are still sealed"):
        await retire_key(install.settings(), old)

    async with running(install.settings()) as (_, client):
        headers = await admin_headers(client, settings)
        webhook_id = created.json()["data"]["id"]
        rotated = await client.post(f"/webhooks/{webhook_id}/rotate-secret", headers=headers)
        assert rotated.status_code == 200
    await retire_key(install.settings(), old)
    assert read_keyring_file(install.keyring_file).key_ids == {"knew"}
