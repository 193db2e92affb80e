"""The supervisor's settings and bookkeeping, and the readiness probe."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from budapp.adapters.clusters.base import RuntimeSpec, RuntimeState
from budapp.adapters.clusters.catalog import RuntimeTemplate


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 5
    window_seconds: float = 300.0
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0

    def backoff(self, recent_crashes: int) -> float:
        delay = self.backoff_initial_seconds * 2 ** max(0, recent_crashes - 1)
        return float(min(delay, self.backoff_max_seconds))


@dataclass(frozen=True)
class SupervisorConfig:
    runtime_dir: Path
    host: str = "127.0.0.1"
    port_range: tuple[int, int] = (20000, 20999)
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    stop_grace_seconds: float = 10.0
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 2
    # How often exits of adopted runtimes and log sizes are checked.
    poll_interval_seconds: float = 0.25
    # The longest wait between two readiness probes.
    health_interval_seconds: float = 0.5


@dataclass(frozen=True)
class ReconcileReport:
    adopted: list[str]
    started: list[str]
    killed: list[str]
    stopped: list[str]
    # Desired but could not be started (unknown template, missing value, no free port).
    failed: list[str] = field(default_factory=list)


@dataclass(eq=False)
class SupervisedRuntime:
    """One runtime as the supervisor tracks it, across its restarts."""

    spec: RuntimeSpec
    template: RuntimeTemplate
    port: int
    state: RuntimeState = RuntimeState.STARTING
    message: str | None = None
    restarts: int = 0
    pid: int | None = None
    create_time: float | None = None
    mark: str = ""
    process: subprocess.Popen[bytes] | None = None
    crashes: deque[float] = field(default_factory=deque)
    stopping: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


async def wait_ready(
    url: str, *, within: float, alive: Callable[[], bool], max_interval: float
) -> Literal["ready", "exited", "timeout"]:
    """Probes `url` until it answers 200, the process exits, or `within` seconds pass. Often at
    first (a fast runtime is seen ready within milliseconds), then less often, up to
    `max_interval`, for runtimes that load weights for minutes."""
    deadline = time.monotonic() + within
    interval = min(0.01, max_interval)
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            if not alive():
                return "exited"
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return "ready"
            if time.monotonic() > deadline:
                return "timeout"
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, max_interval)
