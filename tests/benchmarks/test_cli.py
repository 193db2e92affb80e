"""`budapp bench run` with no budapp server, and the re-run command of a stored run parsing
back into the same configuration."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from typer.testing import CliRunner

from budapp.benchmarks.command import rerun_command
from budapp.benchmarks.config import BenchmarkConfig
from budapp.benchmarks.models import TargetKind
from budapp.cli import app
from tests.sim.conftest import SimFactory


def test_the_rerun_command_parses_back_into_the_same_configuration() -> None:
    config = BenchmarkConfig.model_validate(
        {
            "profile": {"kind": "rate", "rate": 12.5, "arrivals": "poisson", "burstiness": 0.5},
            "prompts": {
                "input_tokens": {"distribution": "uniform", "min": 10, "max": 90, "value": 50},
                "output_tokens": {"distribution": "normal", "value": 64, "stddev": 8},
            },
            "bounds": {"duration_seconds": 30, "max_errors": 5},
            "slos": {"ttft_ms": 500, "tpot_ms": 40},
            "seed": 7,
            "exact_output": False,
        }
    )
    command = rerun_command(
        TargetKind.URL, "m", "http://127.0.0.1:8000/v1", {}, config.model_dump(mode="json")
    )
    words = shlex.split(command)
    assert words[:3] == ["budapp", "bench", "run"]
    result = CliRunner().invoke(app, [*words[1:], "--dry-run"])
    assert result.exit_code == 0, result.output
    assert BenchmarkConfig.model_validate(json.loads(result.output)) == config


def test_bench_run_measures_any_openai_compatible_url(
    start_sim: SimFactory, tmp_path: Path
) -> None:
    sim = start_sim(output_tokens_min=8, output_tokens_max=8)
    out, requests, charts = tmp_path / "r.json", tmp_path / "r.jsonl", tmp_path / "charts"
    result = CliRunner().invoke(
        app,
        ["bench", "run", "--url", sim.base_url + "/v1", "--model", "m",
         "--concurrency", "2", "--max-requests", "6", "--output-tokens", "5",
         "--output", str(out), "--requests", str(requests), "--charts", str(charts)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    metrics = report["results"]["stages"][0]["metrics"]
    assert metrics["requests"]["succeeded"] == 6
    assert metrics["tokens"]["output"] == 30
    assert len(requests.read_text().splitlines()) == 6
    assert (charts / "latency.svg").read_bytes().lstrip().startswith(b"<?xml")
    assert (charts / "throughput.png").read_bytes().startswith(b"\x89PNG")


def test_unknown_options_are_refused() -> None:
    result = CliRunner().invoke(
        app, ["bench", "run", "--url", "http://x/v1", "--model", "m", "--concurrenc", "2"]
    )
    assert result.exit_code == 2
