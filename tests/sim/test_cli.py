from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
from typer.testing import CliRunner

from budapp.sim.cli import cli

SCRIPT = Path(sys.executable).with_name("budapp-sim")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_console_script_serves_until_stopped(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BUDAPP_SIM_")},
        "BUDAPP_SIM_MODELS": "alpha beta",
        "BUDAPP_SIM_OUTPUT_TOKENS": "5",
        "BUDAPP_SIM_SEED": "11",
    }
    log = (tmp_path / "sim.log").open("wb")
    process = subprocess.Popen(  # noqa: S603
        [str(SCRIPT), "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "sim.log").read_text()
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "budapp-sim did not become healthy"
            time.sleep(0.1)

        client = openai.OpenAI(base_url=base + "/v1", api_key="sim", max_retries=0)
        assert [model.id for model in client.models.list()] == ["alpha", "beta"]
        reply = client.chat.completions.create(
            model="beta", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.usage is not None
        assert reply.usage.completion_tokens == 5
    finally:
        process.terminate()
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.wait(15) in (0, -signal.SIGTERM)
        log.close()


def test_inconsistent_options_are_refused() -> None:
    result = CliRunner().invoke(cli, ["--output-tokens-min", "9", "--output-tokens-max", "3"])
    assert result.exit_code == 2
    assert "output_tokens_max must be >= output_tokens_min" in result.output


def test_options_read_budapp_sim_variables() -> None:
    result = CliRunner().invoke(cli, [], env={"BUDAPP_SIM_FAILURE_RATE": "1.5"})
    assert result.exit_code == 2
    assert "failure-rate" in result.output


def test_the_simulator_imports_nothing_else_from_budapp() -> None:
    code = (
        "import sys, budapp.sim.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith('budapp.')"
        " and not m.startswith('budapp.sim')))"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
