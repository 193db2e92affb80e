"""The benchmark server: budapp's real app plus one bare route, `GET /bench/hello`, that runs
through the same middleware stack (request id, error handling) and the same server process, so
its throughput is the ceiling the other scenarios are compared with.

Run as `python -m benchmarks.app --port 9381` from the repository root; it starts uvicorn with
the options `budapp serve` uses (one worker, no access log, no proxy headers).
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from fastapi import FastAPI

from budapp.main import create_app

HELLO_PATH = "/bench/hello"


def create_bench_app() -> FastAPI:
    app = create_app()

    @app.get(HELLO_PATH, include_in_schema=False)
    async def hello() -> dict[str, Any]:
        return {"data": {"hello": "world"}, "meta": {}}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve budapp with the benchmark ceiling route.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9381)
    args = parser.parse_args()
    # The same options as `budapp serve` (src/budapp/cli.py), with one worker.
    uvicorn.run(
        "benchmarks.app:create_bench_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=1,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
