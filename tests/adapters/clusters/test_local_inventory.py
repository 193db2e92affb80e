"""Local inventory: this host's CPU and memory, GPUs from a fake nvidia-smi on PATH (a test
fixture standing in for the external binary)."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from budapp.adapters.clusters.local import LocalProvider, parse_gpus
from budapp.adapters.clusters.supervisor import RuntimeSupervisor

TWO_GPUS = """0, NVIDIA H100 80GB HBM3, 81559, 80000
1, NVIDIA H100 80GB HBM3, 81559, 1024
"""


def fake_nvidia_smi(directory: Path, output: str, *, code: int = 0) -> Path:
    """An executable `nvidia-smi` that checks it was asked the right query."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in *--query-gpu=index,name,memory.total,memory.free*'
        "--format=csv,noheader,nounits*) ;; *) echo bad query >&2; exit 9;; esac\n"
        f"cat <<'OUT'\n{output}OUT\nexit {code}\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return directory


@pytest.fixture
def provider(supervisor: RuntimeSupervisor) -> LocalProvider:
    return LocalProvider(supervisor)


async def test_inventory_without_nvidia_smi_has_cpu_and_memory_only(
    provider: LocalProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    inventory = await provider.inventory()
    assert len(inventory.nodes) == 1
    node = inventory.nodes[0]
    assert node.cpu_cores == psutil.cpu_count(logical=True)
    assert node.memory_total_bytes == psutil.virtual_memory().total
    assert 0 < node.memory_free_bytes <= node.memory_total_bytes
    assert [device.kind for device in node.devices] == ["cpu"]
    assert inventory.gpu_count == 0


async def test_inventory_reads_gpus_from_nvidia_smi(
    provider: LocalProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(
        "PATH", f"{fake_nvidia_smi(tmp_path / 'bin', TWO_GPUS)}:{os.environ['PATH']}"
    )
    inventory = await provider.inventory()
    gpus = inventory.gpus()
    assert [gpu.name for gpu in gpus] == ["NVIDIA H100 80GB HBM3 #0", "NVIDIA H100 80GB HBM3 #1"]
    assert gpus[0].memory_total_bytes == 81559 * 2**20
    assert gpus[1].memory_free_bytes == 1024 * 2**20
    assert inventory.gpu_count == 2
    assert inventory.gpu_memory_free_bytes == (80000 + 1024) * 2**20


async def test_a_failing_nvidia_smi_means_no_gpus(
    provider: LocalProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    failing = fake_nvidia_smi(tmp_path / "bin", "NVIDIA-SMI has failed: no driver\n", code=9)
    monkeypatch.setenv("PATH", f"{failing}:{os.environ['PATH']}")
    assert (await provider.inventory()).gpu_count == 0


def test_parse_skips_garbage_and_unknown_values() -> None:
    output = (
        "\n"
        "0, Tesla T4, 15360, [N/A]\n"
        "garbage line\n"
        "1, Odd, Name, With Commas, 24576, 20000\n"
        "x, Not a GPU, 1, 1\n"
        "2, Short\n"
    )
    gpus = parse_gpus(output)
    assert [(g.name, g.memory_total_bytes, g.memory_free_bytes) for g in gpus] == [
        ("Tesla T4 #0", 15360 * 2**20, None),
        ("Odd, Name, With Commas #1", 24576 * 2**20, 20000 * 2**20),
    ]
