"""Speed of the real-time path (issue 6, items 7 and 8).

    uv run python -m benchmarks.events [--redis redis://127.0.0.1:6379/3] [--events 300]
        [--clients 200] [--deliveries 300]

latency:    commit of an event -> a WebSocket client has it, p50/p99, one event at a time; on
            the in-process bus (one replica) and through Redis (published on replica one,
            received by a client of replica two).
fan-out:    one commit of `--events` events to `--clients` clients of one organization on one
            replica: events delivered per second over all clients.
webhooks:   `--deliveries` notifications to one webhook (a loopback receiver answering 204),
            one worker: deliveries per second, and commit -> received p50/p99.

Everything runs in this one process (uvicorn servers on loopback, SQLite in a temporary
directory), so client and server share the two cores: the numbers are an upper bound on cost
and a lower bound on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from budapp.core import migrate
from budapp.core.components import components
from budapp.core.db import session_scope
from budapp.events.service import EventType, publish_org_event
from budapp.main import create_app
from budapp.notifications.service import notify
from budapp.settings import Settings
from budapp.webhooks.dispatcher import WEBHOOK_DISPATCHER

PASSWORD = "benchmark-password"


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


def settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "access_log": False,
        "log_level": "WARNING",
        "admin_password": PASSWORD,
        "webhook_worker_enabled": False,
        "ws_queue_size": 100_000,
    }
    return Settings(**(values | overrides))


async def admin_token(app: FastAPI) -> tuple[str, uuid.UUID]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://budapp") as client:
        login = await client.post(
            "/auth/login", json={"email": "admin@budapp.local", "password": PASSWORD}
        )
        token = login.json()["data"]["access_token"]
        me = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    return token, uuid.UUID(me.json()["data"]["organization"]["id"])


async def publish(app: FastAPI, organization: uuid.UUID, count: int, n: int = 0) -> None:
    async with session_scope(components(app).session_factory) as session:
        for i in range(count):
            data = {"n": n + i, "sent": time.perf_counter()}
            publish_org_event(session, organization, EventType.ENDPOINT_STATUS, data)


async def next_event(ws: ClientConnection) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await ws.recv())
        if message["type"] == EventType.ENDPOINT_STATUS:
            return message


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


async def latency(publisher: FastAPI, address: str, token: str, org: uuid.UUID, n: int) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(f"ws://{address}/ws", additional_headers=headers) as ws:
        await ws.recv()  # ready
        samples = []
        for i in range(n):
            await publish(publisher, org, 1, i)
            event = await next_event(ws)
            samples.append(time.perf_counter() - event["data"]["sent"])
    return percentiles(samples)


async def fan_out(app: FastAPI, address: str, token: str, org: uuid.UUID, args: Any) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                connect(f"ws://{address}/ws", additional_headers=headers)
            )
            for _ in range(args.clients)
        ]
        for ws in clients:
            await ws.recv()

        async def drain(ws: ClientConnection) -> None:
            for _ in range(args.events):
                await next_event(ws)

        started = time.perf_counter()
        await asyncio.gather(publish(app, org, args.events), *(drain(ws) for ws in clients))
        elapsed = time.perf_counter() - started
    total = args.events * args.clients
    return f"{total:,} messages in {elapsed:.2f} s: {total / elapsed:,.0f} messages/s"


async def webhooks(app: FastAPI, token: str, org: uuid.UUID, count: int) -> list[str]:
    received: list[float] = []
    sent: dict[str, float] = {}
    arrived = asyncio.Event()

    async def receiver(_: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        document = json.loads(body)
        received.append(time.perf_counter() - sent[document["data"]["id"]])
        arrived.set()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    transport = httpx.ASGITransport(app=app)
    async with (
        serve(receiver) as address,
        httpx.AsyncClient(transport=transport, base_url="http://budapp") as client,
    ):
        created = await client.post(
            "/webhooks",
            json={"url": f"http://{address}/hook", "events": ["*"]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 201, created.text
        user = uuid.UUID(
            json.loads(
                (await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})).text
            )["data"]["id"]
        )
        await components(app)[WEBHOOK_DISPATCHER].start()

        async def announce() -> None:
            async with session_scope(components(app).session_factory) as session:
                note = await notify(
                    session, organization_id=org, user_id=user, kind="endpoint.ready", title="x"
                )
                sent[str(note.id)] = time.perf_counter()

        async def until(total: int) -> None:
            while len(received) < total:
                arrived.clear()
                await arrived.wait()

        # One at a time: the latency of a lone delivery (the worker is woken over the bus).
        for i in range(50):
            await announce()
            await until(i + 1)
        alone = percentiles(received)
        received.clear()
        started = time.perf_counter()
        for _ in range(count):
            await announce()
        await until(count)
        elapsed = time.perf_counter() - started
    burst = f"{count} at once: {count / elapsed:,.0f}/s, {percentiles(received)}"
    return [f"one at a time: {alone}", burst]


async def main(args: Any) -> None:
    with tempfile.TemporaryDirectory() as root:
        data_dir = Path(root)
        url = f"sqlite+aiosqlite:///{data_dir / 'budapp.db'}"
        await asyncio.to_thread(migrate.upgrade, url)
        base = {"database_url": url, "auto_migrate": False}
        local = create_app(settings(data_dir, **base, webhook_batch_size=20))
        async with local.router.lifespan_context(local), serve(local) as address:
            token, org = await admin_token(local)
            print(
                "latency, in-process bus:", await latency(local, address, token, org, args.events)
            )
            print(
                f"fan-out, {args.clients} clients:", await fan_out(local, address, token, org, args)
            )
            for line in await webhooks(local, token, org, args.deliveries):
                print("webhooks, one worker, commit -> received,", line)
        if args.redis:
            one = create_app(settings(data_dir, **base, redis_url=args.redis))
            two = create_app(settings(data_dir, **base, redis_url=args.redis))
            async with (
                one.router.lifespan_context(one),
                two.router.lifespan_context(two),
                serve(two) as address,
            ):
                token, org = await admin_token(one)
                result = await latency(one, address, token, org, args.events)
                print("latency, Redis, replica one -> client of replica two:", result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--deliveries", type=int, default=300)
    asyncio.run(main(parser.parse_args()))
