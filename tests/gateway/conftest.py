"""The gateway under test is the session's app served by a real uvicorn server on loopback,
in the test's own event loop (so streams are streamed and disconnects are real); backends
are budapp-sim servers on loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from fastapi import FastAPI

from budapp.core.components import components
from budapp.gateway.proxy import GATEWAY
from budapp.sim import SimConfig
from budapp.usage.meter import USAGE_METER
from tests.api_keys.test_routes import create_key
from tests.factories import World
from tests.sim.conftest import RunningSim, running_sim

SimFactory = Callable[..., RunningSim]


@pytest.fixture(scope="session")
async def gateway_url(app: FastAPI) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # The app's lifespan already runs (the `app` fixture): the server must not run it again.
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the gateway's server stopped during start-up"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


@pytest.fixture
def start_sim() -> Iterator[SimFactory]:
    with ExitStack() as stack:

        def start(**fields: Any) -> RunningSim:
            return stack.enter_context(running_sim(SimConfig(**fields)))

        yield start


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSim]:
    with running_sim(SimConfig(output_tokens_min=8, output_tokens_max=8)) as running:
        yield running


def url_target(sim: RunningSim, **fields: Any) -> dict[str, Any]:
    return {"kind": "url", "base_url": sim.base_url + "/v1", **fields}


async def create_router(
    client: httpx.AsyncClient,
    world: World,
    targets: list[dict[str, Any]],
    *,
    project: uuid.UUID | None = None,
    by: str = "project_admin",
    **fields: Any,
) -> dict[str, Any]:
    body = {"name": fields.pop("name", f"r-{uuid.uuid4().hex[:8]}"), "targets": targets, **fields}
    response = await client.post(
        f"/projects/{project or world.project_a}/routers", json=body, headers=world[by].headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()["data"]
    return created


async def set_limits(client: httpx.AsyncClient, world: World, **limits: int | None) -> None:
    response = await client.put(
        f"/projects/{world.project_a}/rate-limits",
        json=limits,
        headers=world["project_admin"].headers,
    )
    assert response.status_code == 200, response.text


async def new_key(client: httpx.AsyncClient, world: World) -> dict[str, Any]:
    return await create_key(client, world)


def openai_client(gateway_url: str, key: str, **options: Any) -> openai.AsyncOpenAI:
    # No retries: every 429 or 5xx must reach the test.
    return openai.AsyncOpenAI(base_url=gateway_url + "/v1", api_key=key, max_retries=0, **options)


@contextlib.contextmanager
def canned_backend(answer: bytes) -> Iterator[str]:
    """A server on loopback that answers every request with the same raw bytes (a backend
    misbehaving in a way budapp-sim does not); yields its base URL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(65536)
                connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        server.close()


async def within_one_window(seconds: float = 15.0) -> None:
    """Limits count in calendar-aligned windows of a minute: a test that counts calls must
    not straddle a window's end, or its counts start over half-way. Waits for the next
    window when fewer than `seconds` are left of this one."""
    left = 60 - time.time() % 60
    if left < seconds:
        await asyncio.sleep(left + 0.05)


async def flush_usage(app: FastAPI) -> None:
    await components(app)[GATEWAY].drain()
    await components(app)[USAGE_METER].flush()
