"""Data keys over an installation's life: refusing to start with keys that cannot open what is
stored, rotating (also when interrupted), retiring, and the `budapp keys` commands.

Most tests have an installation of their own: a data directory with a fresh SQLite database
built by the migrations, whatever database the rest of the suite runs on. Rotation racing an
update runs on the suite's database and app, PostgreSQL included."""

from __future__ import annotations

import asyncio
import base64
import secrets
import stat
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from budapp.admin import generate_key, retire_key, rotate_keys
from budapp.cli import app as cli
from budapp.core import migrate
from budapp.core.components import components
from budapp.core.db import create_engine, create_session_factory
from budapp.core.errors import Conflict, InvalidInput, NotFound
from budapp.core.keyring import (
    KEY_BYTES,
    DecryptionError,
    Keyring,
    parse_inline,
    read_keyring_file,
    write_keyring_file,
)
from budapp.credentials.models import Credential
from budapp.credentials.service import VAULT, CredentialVault, reencrypt_all
from budapp.main import create_app
from budapp.settings import Settings, get_settings
from tests.conftest import make_settings
from tests.credentials.samples import Sample, create_id, sample
from tests.factories import World

KINDS = ["openai", "aws", "gcp", "kubeconfig", "azure"]


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@dataclass
class Install:
    data_dir: Path

    @property
    def url(self) -> str:
        return f"sqlite+aiosqlite:///{self.data_dir / 'budapp.db'}"

    @property
    def keyring_file(self) -> Path:
        return self.data_dir / "encryption_keys.json"

    def settings(self, **overrides: Any) -> Settings:
        return make_settings(self.data_dir, self.url, **overrides)


@pytest.fixture
async def install(tmp_path: Path) -> Install:
    installation = Install(tmp_path)
    # Alembic drives an event loop of its own.
    await asyncio.to_thread(migrate.upgrade, installation.url)
    return installation


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    application = create_app(settings)
    transport = httpx.ASGITransport(app=application)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=transport, base_url="http://budapp.test") as client,
    ):
        yield application, client


async def admin_headers(client: httpx.AsyncClient, settings: Settings) -> dict[str, str]:
    assert settings.admin_password is not None
    response = await client.post(
        "/auth/login",
        json={
            "email": settings.admin_email,
            "password": settings.admin_password.get_secret_value(),
        },
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['data']['access_token']}"}


async def store(settings: Settings, kinds: list[str]) -> dict[uuid.UUID, Sample]:
    async with running(settings) as (_, client):
        headers = await admin_headers(client, settings)
        stored = {}
        for kind in kinds:
            given = sample(kind)
            stored[await create_id(client, headers, given.spec)] = given
        return stored


async def rows(url: str) -> dict[uuid.UUID, Credential]:
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            found = (await session.scalars(select(Credential))).all()
            return {credential.id: credential for credential in found}
    finally:
        await engine.dispose()


async def assert_all_open(url: str, keyring: Keyring, stored: dict[uuid.UUID, Sample]) -> None:
    vault = CredentialVault(keyring)
    found = await rows(url)
    assert set(found) == set(stored)
    for credential_id, given in stored.items():
        assert vault.open(found[credential_id]) == given.secrets


async def key_ids(url: str) -> dict[uuid.UUID, str | None]:
    return {credential_id: row.key_id for credential_id, row in (await rows(url)).items()}


async def statuses(settings: Settings) -> dict[str, str]:
    async with running(settings) as (_, client):
        listed = await client.get("/credentials", headers=await admin_headers(client, settings))
        assert listed.status_code == 200, listed.text
        return {item["id"]: item["status"] for item in listed.json()["data"]}


async def corrupt(url: str, credential_id: uuid.UUID) -> None:
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            credential = await session.get(Credential, credential_id)
            assert credential is not None
            assert credential.ciphertext is not None
            raw = bytearray(base64.b64decode(credential.ciphertext))
            raw[-1] ^= 0x01
            credential.ciphertext = b64(bytes(raw))
            await session.commit()
    finally:
        await engine.dispose()


async def refused_start(settings: Settings) -> str:
    with pytest.raises(SystemExit) as refused:
        async with running(settings):
            pass
    return str(refused.value)


# --- starting ------------------------------------------------------------------------------


async def test_first_start_generates_the_embedded_keyring(install: Install) -> None:
    assert await statuses(install.settings()) == {}
    assert stat.S_IMODE(install.keyring_file.stat().st_mode) == 0o600
    primary = read_keyring_file(install.keyring_file).primary
    stored = await store(install.settings(), ["openai"])
    assert set((await key_ids(install.url)).values()) == {primary}
    assert read_keyring_file(install.keyring_file).primary == primary
    await assert_all_open(install.url, read_keyring_file(install.keyring_file), stored)


async def test_start_with_the_right_keys_reads_every_credential(install: Install) -> None:
    stored = await store(install.settings(), KINDS)
    keyring = read_keyring_file(install.keyring_file)
    key = keyring.key_bytes(keyring.primary)
    copy = install.data_dir / "elsewhere.json"
    write_keyring_file(copy, {keyring.primary: key}, keyring.primary)
    everything_ok = {str(credential): "ok" for credential in stored}

    assert await statuses(install.settings()) == everything_ok
    inline = f"{keyring.primary}:{b64(key)}"
    assert await statuses(install.settings(encryption_keys=inline)) == everything_ok
    assert await statuses(install.settings(encryption_key_file=copy)) == everything_ok
    # An older key kept beside a new primary does not stand in the way.
    with_new_primary = f"knew:{b64(secrets.token_bytes(KEY_BYTES))},{inline}"
    assert await statuses(install.settings(encryption_keys=with_new_primary)) == everything_ok


async def test_start_refuses_another_key_under_the_same_key_id(install: Install) -> None:
    await store(install.settings(), KINDS[:2])
    primary = read_keyring_file(install.keyring_file).primary
    wrong = f"{primary}:{b64(secrets.token_bytes(KEY_BYTES))}"
    message = await refused_start(install.settings(encryption_keys=wrong))
    assert message.startswith("budapp cannot start")
    assert primary in message
    assert "does not open" in message


async def test_start_refuses_a_wrong_key_file(install: Install) -> None:
    await store(install.settings(), ["openai"])
    primary = read_keyring_file(install.keyring_file).primary
    wrong = install.data_dir / "wrong.json"
    write_keyring_file(wrong, {primary: secrets.token_bytes(KEY_BYTES)}, primary)
    message = await refused_start(install.settings(encryption_key_file=wrong))
    assert "does not open" in message


async def test_start_refuses_keys_without_the_stored_key_id(install: Install) -> None:
    await store(install.settings(), ["openai"])
    primary = read_keyring_file(install.keyring_file).primary
    other = f"kother:{b64(secrets.token_bytes(KEY_BYTES))}"
    message = await refused_start(install.settings(encryption_keys=other))
    assert "not configured" in message
    assert primary in message


async def test_start_refuses_when_the_embedded_keyring_was_lost(install: Install) -> None:
    stored = await store(install.settings(), KINDS[:3])
    original = install.keyring_file.read_bytes()
    install.keyring_file.unlink()

    message = await refused_start(install.settings())
    assert "embedded keyring was missing" in message
    # The refused start generated a keyring; it must not make the next start succeed.
    assert install.keyring_file.exists()
    assert "not configured" in await refused_start(install.settings())

    install.keyring_file.write_bytes(original)
    assert await statuses(install.settings()) == {str(c): "ok" for c in stored}


async def test_start_refuses_a_missing_key_file(install: Install) -> None:
    message = await refused_start(
        install.settings(encryption_key_file=install.data_dir / "absent.json")
    )
    assert "absent.json does not exist" in message


@pytest.mark.parametrize(
    "value", ["k1", f"k1:{b64(b'too short')}", "k1:***", f"{'k' * 40}:{b64(bytes(32))}"]
)
async def test_start_refuses_malformed_inline_keys(install: Install, value: str) -> None:
    message = await refused_start(install.settings(encryption_keys=value))
    assert message.startswith("budapp cannot start")


async def test_one_corrupted_credential_does_not_stop_the_start(install: Install) -> None:
    stored = await store(install.settings(), KINDS)
    # The first credential stored is the one a single-row sample would look at.
    broken = next(iter(stored))
    await corrupt(install.url, broken)
    found = await statuses(install.settings())
    assert found == {str(c): "unreadable" if c == broken else "ok" for c in stored}


# --- rotating ------------------------------------------------------------------------------


async def test_rotation_reseals_every_credential_under_a_new_primary(install: Install) -> None:
    stored = await store(install.settings(), KINDS)
    old = read_keyring_file(install.keyring_file).primary
    progress: list[tuple[int, int]] = []

    primary, report = await rotate_keys(install.settings(), lambda *done: progress.append(done))

    assert primary != old
    assert (report.resealed, report.unreadable) == (len(stored), [])
    assert progress[-1] == (len(stored), len(stored))
    keyring = read_keyring_file(install.keyring_file)
    assert (keyring.primary, keyring.key_ids) == (primary, {old, primary})
    assert stat.S_IMODE(install.keyring_file.stat().st_mode) == 0o600
    assert set((await key_ids(install.url)).values()) == {primary}
    only_new = Keyring({primary: keyring.key_bytes(primary)}, primary)
    await assert_all_open(install.url, only_new, stored)
    assert await statuses(install.settings()) == {str(c): "ok" for c in stored}


async def test_rotation_is_picked_up_by_a_running_instance(install: Install) -> None:
    settings = install.settings()
    stored = await store(settings, KINDS[:2])
    async with running(settings) as (application, client):
        headers = await admin_headers(client, settings)
        primary, _ = await rotate_keys(settings, lambda *_: None)
        for credential in stored:
            read = (await client.get(f"/credentials/{credential}", headers=headers)).json()
            assert (read["data"]["status"], read["data"]["key_id"]) == ("ok", primary)
        created = await create_id(client, headers, sample("openai").spec)
        assert (await key_ids(install.url))[created] == primary
        assert components(application)[VAULT].keyring.primary == primary


async def test_rotation_with_inline_keys_reseals_under_the_first(install: Install) -> None:
    old_key, new_key = secrets.token_bytes(KEY_BYTES), secrets.token_bytes(KEY_BYTES)
    stored = await store(install.settings(encryption_keys=f"kold:{b64(old_key)}"), KINDS)
    both = install.settings(encryption_keys=f"knew:{b64(new_key)},kold:{b64(old_key)}")

    primary, report = await rotate_keys(both, lambda *_: None)

    assert (primary, report.resealed) == ("knew", len(stored))
    assert not install.keyring_file.exists()
    assert set((await key_ids(install.url)).values()) == {"knew"}
    # The old key is no longer needed to start.
    only_new = install.settings(encryption_keys=f"knew:{b64(new_key)}")
    assert await statuses(only_new) == {str(c): "ok" for c in stored}


async def test_interrupted_rotation_loses_nothing_and_finishes_when_run_again(
    install: Install,
) -> None:
    stored = await store(install.settings(), KINDS)
    old_ring = read_keyring_file(install.keyring_file)
    old = old_ring.primary
    keys = {old: old_ring.key_bytes(old), "knew": secrets.token_bytes(KEY_BYTES)}
    write_keyring_file(install.keyring_file, keys, "knew")
    keyring = read_keyring_file(install.keyring_file)
    engine = create_engine(install.url)

    def crash(done: int, total: int) -> None:
        raise RuntimeError(f"interrupted after {done} of {total}")

    try:
        factory = create_session_factory(engine)
        with pytest.raises(RuntimeError, match="interrupted after 2 of 5"):
            await reencrypt_all(factory, keyring, batch_size=2, progress=crash)

        halfway = await key_ids(install.url)
        assert sorted(halfway.values(), key=str) == sorted([old, old, old, "knew", "knew"])
        await assert_all_open(install.url, keyring, stored)
        assert await statuses(install.settings()) == {str(c): "ok" for c in stored}

        progress: list[tuple[int, int]] = []
        report = await reencrypt_all(
            factory, keyring, batch_size=2, progress=lambda *done: progress.append(done)
        )
    finally:
        await engine.dispose()
    assert (report.resealed, report.unreadable) == (3, [])
    assert progress == [(2, 3), (3, 3)]
    assert set((await key_ids(install.url)).values()) == {"knew"}
    await assert_all_open(install.url, Keyring({"knew": keys["knew"]}, "knew"), stored)


async def test_rotation_leaves_a_corrupted_credential_and_names_it(install: Install) -> None:
    stored = await store(install.settings(), KINDS)
    broken = list(stored)[2]
    await corrupt(install.url, broken)
    old = read_keyring_file(install.keyring_file).primary

    primary, report = await rotate_keys(install.settings(), lambda *_: None)

    assert (report.resealed, report.unreadable) == (len(stored) - 1, [broken])
    found = await key_ids(install.url)
    assert found.pop(broken) == old
    assert set(found.values()) == {primary}
    vault = CredentialVault(read_keyring_file(install.keyring_file))
    with pytest.raises(DecryptionError):
        vault.open((await rows(install.url))[broken])


# --- rotating while the API writes ----------------------------------------------------------


def _with_new_primary(app: FastAPI) -> Keyring:
    current: Keyring = components(app)[VAULT].keyring
    keys = {key_id: current.key_bytes(key_id) for key_id in current.key_ids}
    return Keyring({**keys, "krotated": secrets.token_bytes(KEY_BYTES)}, "krotated")


async def _row(app: FastAPI, credential_id: uuid.UUID) -> Credential:
    async with components(app).session_factory() as session:
        credential = await session.get(Credential, credential_id)
        assert credential is not None
        return credential


async def test_update_made_during_a_rotation_batch_is_kept(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    credential = await create_id(client, headers, sample("huggingface").spec)
    keyring = _with_new_primary(app)
    changed = {"token": "hf_changed_during_rotation"}
    updates: list[httpx.Response] = []

    class UpdatedBeforeCommit(AsyncSession):
        """The rotation's session: the API updates the credential after the batch was read
        and re-sealed, before it is committed."""

        async def commit(self) -> None:
            if not updates:
                update = asyncio.create_task(
                    client.put(
                        f"/credentials/{credential}", json={"spec": changed}, headers=headers
                    )
                )
                await asyncio.sleep(1)
                await super().commit()
                updates.append(await update)
                return
            await super().commit()

    base = components(app).session_factory
    await reencrypt_all(async_sessionmaker(class_=UpdatedBeforeCommit, **base.kw), keyring)

    assert updates[0].status_code == 200, updates[0].text
    assert CredentialVault(keyring).open(await _row(app, credential)) == changed
    read = await client.get(f"/credentials/{credential}", headers=headers)
    assert read.json()["data"]["status"] == "ok"


async def test_update_read_before_a_rotation_stays_readable_after_it(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["org_admin"].headers
    credential_id = await create_id(client, headers, sample("huggingface").spec)
    keyring = _with_new_primary(app)
    changed = {"token": "hf_changed_after_rotation"}
    async with components(app).session_factory() as session:
        # What an update does (read, re-seal, flush), with a whole rotation in between.
        credential = await session.get(Credential, credential_id)
        assert credential is not None
        report = await reencrypt_all(components(app).session_factory, keyring)
        assert report.resealed == 1
        components(app)[VAULT].seal(credential, changed)
        await session.commit()

    assert CredentialVault(keyring).open(await _row(app, credential_id)) == changed
    read = await client.get(f"/credentials/{credential_id}", headers=headers)
    assert read.json()["data"]["status"] == "ok"


# --- retiring ------------------------------------------------------------------------------


async def test_retire_refuses_a_key_in_use_and_removes_it_once_unused(install: Install) -> None:
    stored = await store(install.settings(), KINDS[:3])
    old_ring = read_keyring_file(install.keyring_file)
    old = old_ring.primary
    write_keyring_file(
        install.keyring_file,
        {old: old_ring.key_bytes(old), "knew": secrets.token_bytes(KEY_BYTES)},
        "knew",
    )

    with pytest.raises(Conflict, match="still sealed"):
        await retire_key(install.settings(), old)
    assert read_keyring_file(install.keyring_file).key_ids == {old, "knew"}

    engine = create_engine(install.url)
    try:
        keyring = read_keyring_file(install.keyring_file)
        await reencrypt_all(create_session_factory(engine), keyring)
    finally:
        await engine.dispose()
    await retire_key(install.settings(), old)

    remaining = read_keyring_file(install.keyring_file)
    assert (remaining.primary, remaining.key_ids) == ("knew", {"knew"})
    assert await statuses(install.settings()) == {str(c): "ok" for c in stored}


async def test_retire_refuses_the_primary_an_unknown_key_and_inline_keys(
    install: Install,
) -> None:
    await store(install.settings(), ["openai"])
    primary = read_keyring_file(install.keyring_file).primary
    with pytest.raises(Conflict, match="primary"):
        await retire_key(install.settings(), primary)
    with pytest.raises(NotFound):
        await retire_key(install.settings(), "knothere")
    inline = install.settings(encryption_keys=f"k1:{b64(secrets.token_bytes(KEY_BYTES))}")
    with pytest.raises(InvalidInput):
        await retire_key(inline, "k1")
    assert read_keyring_file(install.keyring_file).key_ids == {primary}


# --- the command line ----------------------------------------------------------------------


def test_generate_prints_a_new_key_id_and_32_byte_key() -> None:
    result = CliRunner().invoke(cli, ["keys", "generate"])
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    key_id, _, encoded = line.partition(":")
    assert key_id
    assert len(base64.b64decode(encoded, validate=True)) == KEY_BYTES
    assert parse_inline(line).primary == key_id
    assert generate_key() != generate_key()


@pytest.fixture
def cli_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """An embedded installation the CLI reaches through BUDAPP_DATA_DIR, as in tests/test_cli.py."""
    monkeypatch.setenv("BUDAPP_DATA_DIR", str(tmp_path))
    for name in ("DATABASE_URL", "ENCRYPTION_KEYS", "ENCRYPTION_KEY_FILE"):
        monkeypatch.delenv(f"BUDAPP_{name}", raising=False)
    get_settings.cache_clear()
    installation = Install(tmp_path)
    migrate.upgrade(installation.url)
    yield installation
    get_settings.cache_clear()


def test_cli_rotate_then_retire(cli_install: Install) -> None:
    stored = asyncio.run(store(cli_install.settings(), KINDS))
    old = read_keyring_file(cli_install.keyring_file).primary

    result = CliRunner().invoke(cli, ["keys", "rotate"])

    assert result.exit_code == 0, result.output
    primary = read_keyring_file(cli_install.keyring_file).primary
    assert primary != old
    assert f"primary key {primary}: {len(stored)} credential(s) re-encrypted" in result.output
    assert set(asyncio.run(key_ids(cli_install.url)).values()) == {primary}
    keyring = read_keyring_file(cli_install.keyring_file)
    asyncio.run(assert_all_open(cli_install.url, keyring, stored))
    for given in stored.values():
        for secret in given.secrets.values():
            assert secret not in result.output

    again = CliRunner().invoke(cli, ["keys", "rotate"])
    assert again.exit_code == 0, again.output
    newest = read_keyring_file(cli_install.keyring_file).primary
    assert f"primary key {newest}: {len(stored)} credential(s) re-encrypted" in again.output

    retired = CliRunner().invoke(cli, ["keys", "retire", old])
    assert retired.exit_code == 0, retired.output
    refused = CliRunner().invoke(cli, ["keys", "retire", newest])
    assert refused.exit_code == 1
    assert "CONFLICT" in refused.output
    assert read_keyring_file(cli_install.keyring_file).key_ids == {primary, newest}


def test_cli_rotate_fails_naming_an_unreadable_credential(cli_install: Install) -> None:
    stored = asyncio.run(store(cli_install.settings(), KINDS[:3]))
    broken = list(stored)[1]
    asyncio.run(corrupt(cli_install.url, broken))

    result = CliRunner().invoke(cli, ["keys", "rotate"])

    assert result.exit_code == 1
    assert str(broken) in result.output
    assert "2 credential(s) re-encrypted" in result.output


def test_cli_rotate_resume_makes_no_new_key(cli_install: Install) -> None:
    stored = asyncio.run(store(cli_install.settings(), KINDS[:3]))
    primary = read_keyring_file(cli_install.keyring_file).primary

    result = CliRunner().invoke(cli, ["keys", "rotate", "--resume"])

    assert result.exit_code == 0, result.output
    keyring = read_keyring_file(cli_install.keyring_file)
    assert keyring.primary == primary
    assert keyring.key_ids == {primary}
    # Everything was already under the primary: nothing left to re-encrypt.
    assert f"primary key {primary}: 0 credential(s) re-encrypted" in result.output
    asyncio.run(assert_all_open(cli_install.url, keyring, stored))
