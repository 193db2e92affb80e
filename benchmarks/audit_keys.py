"""Speed of the security spine (issue: audit trail, credentials, API keys).

    uv run python -m benchmarks.audit_keys verify  --db sqlite|postgres [--records 1000000]
    uv run python -m benchmarks.audit_keys append  --db sqlite|postgres [--requests 2000]
    uv run python -m benchmarks.audit_keys api-key [--lookups 200000]

verify:  fills a fresh database with a valid chain, then times `POST /audit/verify`'s work
         (AuditService.verify) in records/s, against the ceiling: the raw SHA-256 of the same
         canonical bytes, one after another, in a Python loop.
append:  p50/p99 of PUT /projects/{id} through the ASGI app with the audit hook, and with it
         removed: the difference is what auditing adds to a mutating request.
api-key: p50/p99 of a warm ApiKeyResolver.resolve (no database call once cached).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, insert, text, update

from budapp.api_keys.resolver import API_KEY_RESOLVER
from budapp.audit import recorder
from budapp.audit.chain import GENESIS_HASH, canonical, canonical_json, link_hash
from budapp.audit.models import AuditChainHead, AuditRecord
from budapp.audit.schemas import VerifyRequest
from budapp.audit.service import AuditService
from budapp.core import migrate
from budapp.core.components import components
from budapp.core.db import BudappSession, create_engine, create_session_factory, utcnow
from budapp.main import create_app
from budapp.settings import Settings

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/budapp_bench_audit"


async def _fresh_database(db: str, workdir: Path) -> str:
    if db == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    else:
        import asyncpg  # noqa: PLC0415

        admin = await asyncpg.connect(user="postgres", host="127.0.0.1", database="postgres")
        await admin.execute("DROP DATABASE IF EXISTS budapp_bench_audit WITH (FORCE)")
        await admin.execute("CREATE DATABASE budapp_bench_audit")
        await admin.close()
        url = POSTGRES_URL
    await asyncio.to_thread(migrate.upgrade, url)
    return url


def _records(count: int) -> list[dict[str, Any]]:
    organization = uuid.uuid4()
    actor = str(uuid.uuid4())
    previous = GENESIS_HASH
    now = utcnow()
    rows = []
    for sequence in range(1, count + 1):
        row: dict[str, Any] = {
            "sequence": sequence,
            "id": uuid.uuid4(),
            "created_at": now,
            "action": "project.update",
            "resource_type": "project",
            "resource_id": str(uuid.uuid4()),
            "actor_type": "user",
            "actor_id": actor,
            "actor_label": "admin@example.com",
            "organization_id": organization,
            "ip_address": "10.1.2.3",
            "user_agent": "bench/1.0",
            "request_id": uuid.uuid4().hex,
            "details": canonical_json(
                {"changes": {"description": {"old": "before", "new": f"after {sequence}"}}}
            ),
            "previous_hash": previous,
        }
        row["current_hash"] = previous = link_hash(row)
        rows.append(row)
    return rows


async def verify(db: str, count: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        url = await _fresh_database(db, Path(workdir))
        rows = _records(count)
        payloads = [canonical(row).encode() for row in rows]
        started = time.perf_counter()
        for payload in payloads:
            hashlib.sha256(payload).hexdigest()
        ceiling = count / (time.perf_counter() - started)

        engine = create_engine(url)
        async with engine.begin() as connection:
            for low in range(0, count, 10_000):
                await connection.execute(insert(AuditRecord), rows[low : low + 10_000])
            await connection.execute(
                update(AuditChainHead)
                .where(AuditChainHead.id == 1)
                .values(last_sequence=count, last_hash=rows[-1]["current_hash"])
            )
        del rows
        if db == "postgres":
            async with engine.connect() as connection:
                await connection.execute(text("ANALYZE audit_records"))
        factory = create_session_factory(engine)
        async with factory() as session:
            service = AuditService(session, factory)
            started = time.perf_counter()
            result = await service.verify(VerifyRequest())
            elapsed = time.perf_counter() - started
        await engine.dispose()
    assert result.ok and result.checked == count, result
    speed = count / elapsed
    print(f"verify {db}: {count} records in {elapsed:.2f} s = {speed:,.0f} records/s")
    print(f"ceiling (raw SHA-256 of the same bytes in Python): {ceiling:,.0f} records/s")
    print(f"verify / ceiling = {speed / ceiling:.0%}")


async def append(db: str, requests: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        url = await _fresh_database(db, Path(workdir))
        settings = Settings(
            data_dir=Path(workdir),
            database_url=url,
            auto_migrate=False,
            access_log=False,
            log_level="WARNING",
            admin_password="bench-password",  # type: ignore[arg-type]
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                login = await client.post(
                    "/auth/login",
                    json={"email": settings.admin_email, "password": "bench-password"},
                )
                headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
                project = await client.post("/projects", json={"name": "bench"}, headers=headers)
                path = f"/projects/{project.json()['data']['id']}"

                async def run(label: str) -> float:
                    timings = []
                    for i in range(requests):
                        started = time.perf_counter()
                        response = await client.put(
                            path, json={"description": f"{label} {i}"}, headers=headers
                        )
                        timings.append(time.perf_counter() - started)
                        assert response.status_code == 200
                    p50 = statistics.median(timings) * 1000
                    p99 = statistics.quantiles(timings, n=100)[98] * 1000
                    print(f"{label:>13}: p50 {p50:.3f} ms  p99 {p99:.3f} ms")
                    return p50

                await run("warm-up")
                audited = await run("with audit")
                event.remove(BudappSession, "after_flush", recorder._record_flush)
                try:
                    bare = await run("without audit")
                finally:
                    event.listen(BudappSession, "after_flush", recorder._record_flush)
        print(f"append {db}: audit adds {audited - bare:.3f} ms at p50 per mutating request")


async def api_key(lookups: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        url = await _fresh_database("sqlite", Path(workdir))
        settings = Settings(
            data_dir=Path(workdir),
            database_url=url,
            auto_migrate=False,
            access_log=False,
            log_level="WARNING",
            admin_password="bench-password",  # type: ignore[arg-type]
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                login = await client.post(
                    "/auth/login",
                    json={"email": settings.admin_email, "password": "bench-password"},
                )
                headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
                project = await client.post("/projects", json={"name": "bench"}, headers=headers)
                created = await client.post(
                    f"/projects/{project.json()['data']['id']}/api-keys",
                    json={"name": "bench"},
                    headers=headers,
                )
                raw = created.json()["data"]["key"]
            resolver = components(app)[API_KEY_RESOLVER]
            queries = 0

            def count(*_: object) -> None:
                nonlocal queries
                queries += 1

            await resolver.resolve(raw)
            event.listen(components(app).engine.sync_engine, "before_cursor_execute", count)
            timings = []
            for _ in range(lookups):
                started = time.perf_counter_ns()
                await resolver.resolve(raw)
                timings.append(time.perf_counter_ns() - started)
            event.remove(components(app).engine.sync_engine, "before_cursor_execute", count)
    p50 = statistics.median(timings) / 1000
    p99 = statistics.quantiles(timings, n=100)[98] / 1000
    print(f"api-key warm resolve: p50 {p50:.2f} µs  p99 {p99:.2f} µs  database queries: {queries}")


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    v.add_argument("--records", type=int, default=1_000_000)
    a = sub.add_parser("append")
    a.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    a.add_argument("--requests", type=int, default=2000)
    k = sub.add_parser("api-key")
    k.add_argument("--lookups", type=int, default=200_000)
    args = parser.parse_args()
    if args.command == "verify":
        asyncio.run(verify(args.db, args.records))
    elif args.command == "append":
        asyncio.run(append(args.db, args.requests))
    else:
        asyncio.run(api_key(args.lookups))


if __name__ == "__main__":
    main()
