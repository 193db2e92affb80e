"""budapp-sim as the ground truth: in its own process (`sim_process`), so that its timing does
not share a GIL with the load generator under test; or in a thread (`start_sim`) where the
timing does not matter."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from budapp.benchmarks.environment import BENCHMARK_ENVIRONMENT
from budapp.core.components import components
from tests.endpoints.conftest import cluster, model
from tests.gateway.conftest import gateway_url
from tests.sim.conftest import start_sim

__all__ = ["cluster", "gateway_url", "model", "start_sim"]

SCRIPT = Path(sys.executable).with_name("budapp-sim")
SimProcess = Callable[..., str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def sim_in_process(*options: str) -> Iterator[str]:
    """Runs `budapp-sim <options>` on a free port; yields its base URL."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDAPP_SIM_")}
    process = subprocess.Popen(  # noqa: S603
        [str(SCRIPT), "--port", str(port), "--log-level", "warning", *options],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "budapp-sim stopped during start-up"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/health").status_code == 200:
                    break
            assert time.monotonic() < deadline, "budapp-sim did not become healthy"
            time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(15)


@pytest.fixture
def sim_process() -> Iterator[SimProcess]:
    with contextlib.ExitStack() as stack:

        def start(*options: str) -> str:
            return stack.enter_context(sim_in_process(*options))

        yield start


# --- the API -------------------------------------------------------------------------------


@pytest.fixture
def private_urls_allowed(app: Any) -> Iterator[None]:
    """The sims of these tests listen on loopback: allowed here (as on a laptop)."""
    environment = components(app)[BENCHMARK_ENVIRONMENT]
    before = environment.allow_private_urls
    environment.allow_private_urls = True
    yield
    environment.allow_private_urls = before


async def wait_for_benchmark(
    client: Any, run_id: str, headers: dict[str, str], seconds: float = 90.0
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        response = await client.get(f"/benchmarks/{run_id}", headers=headers)
        body: dict[str, Any] = response.json()["data"]
        if body["status"] in {"SUCCEEDED", "FAILED", "CANCELLED"}:
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)


def benchmark_body(target: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "name": fields.pop("name", "bench"),
        "target": target,
        "profile": fields.pop("profile", {"kind": "concurrency", "concurrency": 2}),
        "prompts": fields.pop(
            "prompts", {"input_tokens": {"value": 16}, "output_tokens": {"value": 8}}
        ),
        "bounds": fields.pop("bounds", {"duration_seconds": 5, "max_requests": 6}),
        **fields,
    }
