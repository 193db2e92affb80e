"""Clusters over an installation's life, each test with an installation of its own (a data
directory and a SQLite database): the local cluster and the runtime reconciliation at start,
and cluster tokens through a key rotation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psutil
import pytest
from sqlalchemy import select

from budapp import startup
from budapp.adapters.clusters.base import RuntimeSpec
from budapp.admin import retire_key, rotate_keys
from budapp.clusters.models import Cluster, ClusterProviderKind, ClusterStatus
from budapp.core import migrate
from budapp.core.components import RUNTIME_SUPERVISOR, components
from budapp.core.db import create_engine, create_session_factory
from budapp.core.keyring import read_keyring_file
from budapp.main import create_app
from tests.adapters.clusters.conftest import write_test_templates
from tests.adapters.clusters.test_supervisor import gone, run_host
from tests.credentials.test_keys import Install, admin_headers, running
from tests.fixtures.budcluster_server import SAMPLE_INVENTORY, ClusterState, serve


@pytest.fixture
async def install(tmp_path: Path) -> Install:
    installation = Install(tmp_path / "install")
    installation.data_dir.mkdir()
    await asyncio.to_thread(migrate.upgrade, installation.url)
    return installation


async def clusters(url: str) -> list[Cluster]:
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            return list((await session.scalars(select(Cluster))).all())
    finally:
        await engine.dispose()


async def test_first_start_registers_the_local_cluster_once(install: Install) -> None:
    async with running(install.settings()) as (_, client):
        headers = await admin_headers(client, install.settings())
        listed = (await client.get("/clusters", headers=headers)).json()
        assert [(c["name"], c["provider"], c["status"]) for c in listed["data"]] == [
            ("local", "local", "AVAILABLE")
        ]
    async with running(install.settings()):
        pass
    assert len(await clusters(install.url)) == 1


async def test_the_setting_turns_the_local_cluster_off(install: Install) -> None:
    async with running(install.settings(local_cluster_auto_register=False)):
        pass
    assert await clusters(install.url) == []


async def test_start_stops_runtimes_a_crashed_budapp_left_behind(
    install: Install, tmp_path: Path
) -> None:
    templates = write_test_templates(tmp_path / "templates")
    runtime_dir = install.data_dir / "runtimes"
    left = [RuntimeSpec(runtime_id="left", template="fake", model_name="m")]
    statuses = await asyncio.to_thread(run_host, runtime_dir, templates, left)
    runtime_pid = statuses[0]["pid"]
    assert not gone(runtime_pid)
    settings = install.settings(runtime_templates_dir=templates)
    async with running(settings) as (application, _):
        # Nothing is desired until endpoints exist: the leftover is ended, not adopted.
        assert gone(runtime_pid)
        assert components(application)[RUNTIME_SUPERVISOR].statuses() == []
    state = json.loads((runtime_dir / "state.json").read_text())
    assert state == {}


async def test_runtimes_outlive_shutdown_when_asked_and_are_adopted(
    install: Install, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates = write_test_templates(tmp_path / "templates")
    settings = install.settings(runtime_templates_dir=templates, runtime_stop_on_shutdown=False)
    spec = RuntimeSpec(runtime_id="kept", template="fake", model_name="m")
    async with running(settings) as (application, _):
        status = await components(application)[RUNTIME_SUPERVISOR].start(spec)
    assert status.pid is not None
    assert psutil.pid_exists(status.pid)
    assert not gone(status.pid)

    async def desired(factory: object) -> list[RuntimeSpec]:
        return [spec]

    # The next start adopts it (the endpoints domain says it should run); this one stops
    # it on shutdown, the default.
    monkeypatch.setattr(startup, "desired_local_runtimes", desired)
    application = create_app(install.settings(runtime_templates_dir=templates))
    async with application.router.lifespan_context(application):
        supervisor = components(application)[RUNTIME_SUPERVISOR]
        assert (await supervisor.wait_settled("kept")).pid == status.pid
        assert (await supervisor.reconcile([spec])).adopted == []
    assert gone(status.pid)


async def test_cluster_tokens_survive_a_key_rotation_and_retirement(install: Install) -> None:
    state = ClusterState(token="rotating-token", inventory=SAMPLE_INVENTORY)
    settings = install.settings(local_cluster_auto_register=False)
    with serve(state) as url:
        async with running(settings) as (_, client):
            headers = await admin_headers(client, settings)
            body = {
                "name": "remote",
                "provider": "budcluster",
                "connection": {"base_url": url, "token": "rotating-token"},
            }
            cluster_id = (await client.post("/clusters", json=body, headers=headers)).json()[
                "data"
            ]["id"]
        old = read_keyring_file(install.keyring_file).primary
        primary, _ = await rotate_keys(settings, lambda *_: None)
        [cluster] = await clusters(install.url)
        assert cluster.key_id == primary
        await retire_key(settings, old)
        async with running(settings) as (_, client):
            headers = await admin_headers(client, settings)
            onboarded = await client.post(f"/clusters/{cluster_id}/onboard", headers=headers)
            assert onboarded.status_code == 200, onboarded.text
            assert onboarded.json()["data"]["status"] == ClusterStatus.AVAILABLE
            assert onboarded.json()["data"]["provider"] == ClusterProviderKind.BUDCLUSTER
