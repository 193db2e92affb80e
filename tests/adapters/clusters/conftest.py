from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from budapp.adapters.clusters.base import RuntimeStatus
from budapp.adapters.clusters.catalog import SHIPPED, TemplateCatalog
from budapp.adapters.clusters.runtime import RestartPolicy, SupervisorConfig
from budapp.adapters.clusters.supervisor import RuntimeSupervisor

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SERVER = FIXTURES / "runtime_server.py"


def write_test_templates(directory: Path, *, readiness_timeout: float = 10.0) -> Path:
    """A `fake` template running tests/fixtures/runtime_server.py: a test-only template,
    written as data like the shipped ones."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fake.yaml").write_text(
        "name: fake\n"
        f"command: [{sys.executable!r}, {str(SERVER)!r}, --host, '{{host}}', --port, "
        "'{port}', --name, '{model_name}', '{extra_args}']\n"
        "health_path: /health\n"
        f"readiness_timeout_seconds: {readiness_timeout}\n"
        "env: {RUNTIME_KIND: fake}\n",
        encoding="utf-8",
    )
    return directory


def make_config(runtime_dir: Path, **overrides: object) -> SupervisorConfig:
    values: dict[str, object] = {
        "runtime_dir": runtime_dir,
        "port_range": (21000, 21999),
        "restart": RestartPolicy(
            max_restarts=2, window_seconds=60, backoff_initial_seconds=0.2, backoff_max_seconds=1
        ),
        "stop_grace_seconds": 2.0,
        "poll_interval_seconds": 0.05,
        "health_interval_seconds": 0.05,
    }
    values.update(overrides)
    return SupervisorConfig(**values)  # type: ignore[arg-type]


def catalog_for(templates: Path) -> TemplateCatalog:
    return TemplateCatalog.load([SHIPPED, templates])


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    return write_test_templates(tmp_path / "templates")


@pytest.fixture
def runtime_dir(tmp_path: Path) -> Path:
    return tmp_path / "runtimes"


class Recorder:
    def __init__(self) -> None:
        self.seen: list[RuntimeStatus] = []

    async def __call__(self, status: RuntimeStatus) -> None:
        self.seen.append(status)

    def states(self, runtime_id: str) -> list[str]:
        return [s.state.value for s in self.seen if s.runtime_id == runtime_id]


@pytest.fixture
async def supervisor(runtime_dir: Path, templates: Path) -> AsyncIterator[RuntimeSupervisor]:
    instance = RuntimeSupervisor(make_config(runtime_dir), catalog_for(templates))
    await instance.open()
    yield instance
    await instance.close()


@pytest.fixture
def recorder(supervisor: RuntimeSupervisor) -> Recorder:
    recording = Recorder()
    supervisor.subscribe(recording)
    return recording
