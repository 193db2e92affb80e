"""The `local` provider: this host. Inventory from psutil and, when present, nvidia-smi;
model runtimes as child processes of the runtime supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import platform
import shutil
import socket

import psutil

from budapp.adapters.clusters.base import (
    Device,
    Inventory,
    Node,
    Progress,
    RuntimeSpec,
    RuntimeStatus,
)
from budapp.adapters.clusters.supervisor import RuntimeSupervisor
from budapp.core.logging import get_logger

log = get_logger("budapp.clusters.local")

GPU_QUERY = [
    "--query-gpu=index,name,memory.total,memory.free",
    "--format=csv,noheader,nounits",
]
_MIB = 1024 * 1024
_NVIDIA_SMI_TIMEOUT = 10.0


class LocalProvider:
    def __init__(self, supervisor: RuntimeSupervisor, *, nvidia_smi: str = "nvidia-smi") -> None:
        self.supervisor = supervisor
        self.nvidia_smi = nvidia_smi

    async def inventory(self) -> Inventory:
        memory = psutil.virtual_memory()
        cores = psutil.cpu_count(logical=True) or 1
        cpu = Device(
            kind="cpu",
            name=platform.processor() or platform.machine() or "cpu",
            count=cores,
            memory_total_bytes=memory.total,
            memory_free_bytes=memory.available,
        )
        node = Node(
            name=socket.gethostname(),
            cpu_cores=cores,
            memory_total_bytes=memory.total,
            memory_free_bytes=memory.available,
            devices=[cpu, *await self.gpus()],
        )
        return Inventory(nodes=[node])

    async def gpus(self) -> list[Device]:
        executable = shutil.which(self.nvidia_smi)
        if executable is None:
            return []
        try:
            process = await asyncio.create_subprocess_exec(
                executable,
                *GPU_QUERY,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            stdout, stderr = await asyncio.wait_for(process.communicate(), _NVIDIA_SMI_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            log.warning("nvidia_smi_timeout", executable=executable)
            return []
        except OSError as exc:
            log.warning("nvidia_smi_failed", executable=executable, error=str(exc))
            return []
        if process.returncode != 0:
            # No driver loaded, or no device: a host without usable GPUs.
            reason = stderr.decode(errors="replace").strip()[:200]
            log.warning("nvidia_smi_failed", code=process.returncode, error=reason)
            return []
        return parse_gpus(stdout.decode(errors="replace"))

    async def deploy_runtime(
        self,
        spec: RuntimeSpec,
        progress: Progress | None = None,  # noqa: ARG002 - a process has no stages to report
    ) -> RuntimeStatus:
        return await self.supervisor.start(spec)

    async def stop_runtime(self, runtime_id: str) -> None:
        await self.supervisor.stop(runtime_id)

    async def runtime_status(self, runtime_id: str) -> RuntimeStatus:
        return self.supervisor.status(runtime_id)

    async def runtime_logs(self, runtime_id: str, lines: int = 100) -> list[str]:
        return await self.supervisor.logs(runtime_id, lines)


def parse_gpus(output: str) -> list[Device]:
    """`index, name, memory.total, memory.free` per line, memory in MiB. A line that does
    not parse is skipped (and logged) rather than failing the whole inventory; values
    nvidia-smi cannot read (`[N/A]`) become None."""
    devices = []
    for line in output.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if not line.strip():
            continue
        if len(fields) < 4 or not fields[0].isdigit():
            log.warning("nvidia_smi_line_skipped", line=line[:200])
            continue
        # A name with a comma in it spreads over several fields: total and free are the last.
        name = ", ".join(fields[1:-2]) or "gpu"
        devices.append(
            Device(
                kind="gpu",
                name=f"{name} #{fields[0]}",
                count=1,
                memory_total_bytes=_mib(fields[-2]),
                memory_free_bytes=_mib(fields[-1]),
            )
        )
    return devices


def _mib(value: str) -> int | None:
    try:
        return int(float(value)) * _MIB
    except ValueError:
        return None
