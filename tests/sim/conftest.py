"""The simulator under test runs in a real uvicorn server on loopback, in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from budapp.sim import SimApp, SimConfig, create_app


@dataclass
class RunningSim:
    base_url: str
    app: SimApp

    def client(self) -> openai.OpenAI:
        # No retries: a 429 or a 500 must reach the test, not be retried away.
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key="sim", max_retries=0)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of GET /metrics (0 when the series does not exist yet)."""
        with self.http() as http:
            text = http.get("/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0


@contextmanager
def running_sim(config: SimConfig) -> Iterator[RunningSim]:
    app = create_app(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "the simulator's server stopped during start-up"
        assert time.monotonic() < deadline, "the simulator's server did not start"
        time.sleep(0.01)
    try:
        yield RunningSim(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


SimFactory = Callable[..., RunningSim]


@pytest.fixture
def start_sim() -> Iterator[SimFactory]:
    """Starts a simulator with the given SimConfig fields; all are stopped after the test."""
    with ExitStack() as stack:

        def start(**fields: Any) -> RunningSim:
            return stack.enter_context(running_sim(SimConfig(**fields)))

        yield start


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSim]:
    """A simulator with the defaults (16 tokens, no delays, any model name), per module."""
    with running_sim(SimConfig()) as running:
        yield running
