"""What budapp needs from a cluster, whatever runs it: its inventory, and model runtimes
started, stopped, watched and read from. `local.py` is this host, `budcluster.py` a remote
cluster service reached over HTTP."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

RUNTIME_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class ProviderError(Exception):
    """The provider answered, but not with what was asked (refused, malformed, unknown id)."""


class ClusterUnreachable(ProviderError):
    """The provider could not be reached at all (connection refused, timeout, 5xx)."""


class UnknownRuntime(ProviderError):
    """No runtime with this id on the cluster."""


class RuntimeConflict(ProviderError):
    """A runtime id already runs with a different spec."""


class _Contract(BaseModel):
    # Providers may send more than budapp reads; it keeps only what it knows.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Device(_Contract):
    kind: Literal["cpu", "gpu"]
    name: str = Field(max_length=255)
    # The Kubernetes extended resource that requests it (`nvidia.com/gpu`, a MIG profile).
    resource: str | None = Field(default=None, max_length=255)
    count: int = Field(default=1, ge=0)
    # Per device; None when the provider does not know.
    memory_total_bytes: int | None = Field(default=None, ge=0)
    memory_free_bytes: int | None = Field(default=None, ge=0)


class Node(_Contract):
    name: str = Field(max_length=255)
    cpu_cores: int = Field(ge=0)
    memory_total_bytes: int = Field(ge=0)
    memory_free_bytes: int = Field(ge=0)
    devices: list[Device] = Field(default_factory=list, max_length=1024)
    # Kubernetes taints (`key=value:Effect`): pods land there only when they tolerate them.
    taints: list[str] = Field(default_factory=list, max_length=64)


class Inventory(_Contract):
    nodes: list[Node] = Field(default_factory=list, max_length=10_000)

    @property
    def cpu_cores(self) -> int:
        return sum(node.cpu_cores for node in self.nodes)

    @property
    def memory_total_bytes(self) -> int:
        return sum(node.memory_total_bytes for node in self.nodes)

    @property
    def memory_free_bytes(self) -> int:
        return sum(node.memory_free_bytes for node in self.nodes)

    def gpus(self) -> list[Device]:
        return [device for node in self.nodes for device in node.devices if device.kind == "gpu"]

    @property
    def gpu_count(self) -> int:
        return sum(device.count for device in self.gpus())

    @property
    def gpu_memory_total_bytes(self) -> int:
        return sum((d.memory_total_bytes or 0) * d.count for d in self.gpus())

    @property
    def gpu_memory_free_bytes(self) -> int:
        return sum((d.memory_free_bytes or 0) * d.count for d in self.gpus())


class RuntimeState(StrEnum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    # Died and waiting out its backoff before the next start.
    RESTARTING = "RESTARTING"
    # Never became ready, or died too often: left stopped until asked again.
    FAILED = "FAILED"
    STOPPED = "STOPPED"


class Placement(_Contract):
    """Where the planner put a replica; a provider that schedules (Kubernetes) turns it into
    resource requests, the local provider into the devices it hands the process."""

    node: str | None = Field(default=None, max_length=255)
    device_kind: Literal["gpu", "cpu"] = "cpu"
    device_count: int = Field(default=0, ge=0, le=64)
    # GPU memory for a GPU replica, host memory for a CPU one.
    memory_bytes: int | None = Field(default=None, ge=0)


class RuntimeSpec(_Contract):
    """One model runtime to run: the caller (the endpoints domain) names it with an id of its
    own, stable across budapp restarts (e.g. `<endpoint id>-<replica>`)."""

    runtime_id: str = Field(pattern=f"^{RUNTIME_ID.pattern}$")
    template: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    model_name: str = Field(min_length=1, max_length=255)
    model_path: str | None = Field(default=None, max_length=4096)
    context_length: int | None = Field(default=None, ge=1)
    extra_args: list[str] = Field(default_factory=list, max_length=64)
    env: dict[str, str] = Field(default_factory=dict, max_length=64)
    placement: Placement | None = None
    # The endpoint it serves, for labels on what a cluster runs (None outside endpoints).
    endpoint_id: str | None = Field(default=None, max_length=64)


class RuntimeStatus(_Contract):
    runtime_id: str
    state: RuntimeState
    url: str | None = None
    pid: int | None = None
    restarts: int = 0
    message: str | None = None


Progress = Callable[[str], Awaitable[None]]


class ClusterProvider(Protocol):
    async def inventory(self) -> Inventory: ...

    async def deploy_runtime(
        self, spec: RuntimeSpec, progress: Progress | None = None
    ) -> RuntimeStatus:
        """Starts the runtime (idempotent for a runtime id already running) and returns once
        it is ready or has failed; a remote provider may answer STARTING. `progress` hears
        a line for each stage the provider sees (scheduled, image pulled, ...)."""
        ...

    async def stop_runtime(self, runtime_id: str) -> None: ...

    async def runtime_status(self, runtime_id: str) -> RuntimeStatus: ...

    async def runtime_logs(self, runtime_id: str, lines: int = 100) -> list[str]: ...


@runtime_checkable
class ReconcilingProvider(ClusterProvider, Protocol):
    """A provider that can list what it runs for budapp, so that drift can be found."""

    async def runtime_ids(self) -> set[str]: ...

    async def ensure_runtime(self, spec: RuntimeSpec) -> None:
        """Creates what the runtime needs when it is missing, without waiting for it."""
        ...
