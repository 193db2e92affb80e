"""Secrets at rest: the row holds only a ciphertext bound to it, and one credential that cannot
be opened (copied, corrupted, truncated) spoils nothing but itself."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from budapp.core.components import components
from budapp.core.errors import Conflict, NotFound
from budapp.core.keyring import NONCE_BYTES
from budapp.credentials.service import VAULT, CredentialUnreadable
from tests.credentials.samples import (
    create_id,
    overwrite_row,
    reveal,
    sample,
    stored_row,
)
from tests.factories import World

TAG_BYTES = 16


async def test_stored_row_holds_only_a_ciphertext(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    given = sample("aws_bedrock")
    credential = await create_id(client, world["org_admin"].headers, given.spec)
    row = await stored_row(app, credential)
    flattened = json.dumps({k: str(v) for k, v in row.items()})
    for secret in given.secrets.values():
        assert secret not in flattened
        assert secret[:-4] not in flattened
    assert row["config"] == {"region": "us-east-1"}
    assert row["key_id"] == components(app)[VAULT].keyring.primary
    raw = base64.b64decode(row["ciphertext"], validate=True)
    plaintext_length = len(json.dumps(given.secrets).encode())
    assert len(raw) == NONCE_BYTES + plaintext_length + TAG_BYTES


async def test_sealing_twice_gives_different_ciphertexts(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    spec = {"kind": "huggingface", "token": "hf_same_token_for_both"}
    first = await create_id(client, world["org_admin"].headers, spec)
    second = await create_id(client, world["org_admin"].headers, spec)
    first_row, second_row = await stored_row(app, first), await stored_row(app, second)
    assert first_row["ciphertext"] != second_row["ciphertext"]
    nonce = base64.b64decode(first_row["ciphertext"])[:NONCE_BYTES]
    assert nonce != base64.b64decode(second_row["ciphertext"])[:NONCE_BYTES]


async def test_ciphertext_copied_onto_another_row_is_unreadable(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    source = await create_id(client, headers, sample("openai").spec)
    victim = await create_id(client, headers, sample("anthropic").spec)
    copied = await stored_row(app, source)
    await overwrite_row(app, victim, key_id=copied["key_id"], ciphertext=copied["ciphertext"])

    response = await client.get(f"/credentials/{victim}", headers=headers)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "unreadable"
    assert data["secrets"] is None
    assert data["error"]
    assert (await client.get(f"/credentials/{source}", headers=headers)).json()["data"][
        "status"
    ] == "ok"
    with pytest.raises(CredentialUnreadable):
        await reveal(app, victim)


def _flip_middle_byte(ciphertext: str) -> str:
    raw = bytearray(base64.b64decode(ciphertext))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _drop_tag(ciphertext: str) -> str:
    raw = base64.b64decode(ciphertext)
    return base64.b64encode(raw[:-TAG_BYTES]).decode()


CORRUPTIONS: dict[str, tuple[Callable[[str], str], str | None]] = {
    "flipped byte": (_flip_middle_byte, None),
    "tag cut off": (_drop_tag, None),
    "truncated to the nonce": (lambda c: base64.b64encode(base64.b64decode(c)[:12]).decode(), None),
    "emptied": (lambda c: "", None),
    "not base64": (lambda c: "!!" + c[2:], None),
    "unknown key id": (lambda c: c, "kdoesnotexist"),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
async def test_corrupted_credential_is_unreadable_and_spoils_no_other(
    app: FastAPI, client: httpx.AsyncClient, world: World, corruption: str
) -> None:
    headers = world["org_admin"].headers
    healthy = {
        await create_id(client, headers, given.spec): given
        for given in (sample("openai"), sample("gcp"), sample("kubeconfig"))
    }
    broken = await create_id(client, headers, sample("aws").spec, name="broken")
    row = await stored_row(app, broken)
    damage, key_id = CORRUPTIONS[corruption]
    await overwrite_row(
        app, broken, ciphertext=damage(row["ciphertext"]), key_id=key_id or row["key_id"]
    )

    response = await client.get(f"/credentials/{broken}", headers=headers)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["status"], data["secrets"]) == ("unreadable", None)
    assert data["error"]
    assert data["config"] == {"region": "eu-west-1"}

    listed = await client.get("/credentials", headers=headers)
    assert listed.status_code == 200
    status = {uuid.UUID(item["id"]): item["status"] for item in listed.json()["data"]}
    assert status == {broken: "unreadable", **dict.fromkeys(healthy, "ok")}
    for credential, given in healthy.items():
        single = await client.get(f"/credentials/{credential}", headers=headers)
        assert single.json()["data"]["status"] == "ok"
        assert await reveal(app, credential) == given.spec

    with pytest.raises(CredentialUnreadable) as raised:
        await reveal(app, broken)
    assert isinstance(raised.value, Conflict)
    assert raised.value.code == "CONFLICT"


async def test_unreadable_credential_refuses_spec_changes_but_can_be_deleted(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    broken = await create_id(client, headers, sample("aws").spec)
    row = await stored_row(app, broken)
    await overwrite_row(app, broken, ciphertext=_flip_middle_byte(row["ciphertext"]))

    # Merging a partial change needs the old secrets: refused rather than guessed.
    response = await client.put(
        f"/credentials/{broken}", json={"spec": {"region": "us-west-2"}}, headers=headers
    )
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "CONFLICT"
    assert (await stored_row(app, broken))["config"] == {"region": "eu-west-1"}

    assert (await client.delete(f"/credentials/{broken}", headers=headers)).status_code == 204
    assert (await stored_row(app, broken))["ciphertext"] is None


async def test_reveal_of_a_deleted_credential_is_not_found(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    credential = await create_id(client, headers, sample("openai").spec)
    assert (await client.delete(f"/credentials/{credential}", headers=headers)).status_code == 204
    with pytest.raises(NotFound):
        await reveal(app, credential)
