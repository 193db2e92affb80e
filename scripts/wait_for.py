"""Waits until a backend answers: `wait_for.py postgres URL` or `wait_for.py redis URL`.
Exit status 0 when it does within --timeout seconds, 1 otherwise."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time


async def _postgres(url: str) -> None:
    import asyncpg  # noqa: PLC0415
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    parsed = make_url(url)
    connection = await asyncpg.connect(
        user=parsed.username or "postgres",
        password=parsed.password,
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        database="postgres",
        timeout=2,
    )
    await connection.close()


async def _redis(url: str) -> None:
    from redis.asyncio import Redis  # noqa: PLC0415

    client = Redis.from_url(url, socket_connect_timeout=2)
    try:
        await client.ping()
    finally:
        await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", choices=["postgres", "redis"])
    parser.add_argument("url")
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    check = _postgres if args.backend == "postgres" else _redis
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            asyncio.run(check(args.url))
            return 0
        except Exception:
            if time.monotonic() >= deadline:
                return 1
            time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
