"""`budapp bench run ...`: the command line that runs a benchmark without a budapp server,
and the exact command that re-runs a stored one. Both directions go through OPTIONS, so the
command a run shows parses back into the same configuration (tests/benchmarks)."""

from __future__ import annotations

import shlex
from typing import Any

from budapp.benchmarks.models import TargetKind

# CLI option -> the configuration path it sets (a dotted path into BenchmarkConfig's JSON).
OPTIONS: dict[str, str] = {
    "--api": "api",
    "--seed": "seed",
    "--profile": "profile.kind",
    "--concurrency": "profile.concurrency",
    "--rate": "profile.rate",
    "--arrivals": "profile.arrivals",
    "--burstiness": "profile.burstiness",
    "--max-concurrency": "profile.max_concurrency",
    "--points": "profile.points",
    "--search": "profile.search",
    "--low": "profile.low",
    "--high": "profile.high",
    "--steps": "profile.steps",
    "--tolerance": "profile.tolerance",
    "--attainment": "profile.attainment",
    "--input-tokens": "prompts.input_tokens.value",
    "--input-distribution": "prompts.input_tokens.distribution",
    "--input-min": "prompts.input_tokens.min",
    "--input-max": "prompts.input_tokens.max",
    "--input-stddev": "prompts.input_tokens.stddev",
    "--output-tokens": "prompts.output_tokens.value",
    "--output-distribution": "prompts.output_tokens.distribution",
    "--output-min": "prompts.output_tokens.min",
    "--output-max": "prompts.output_tokens.max",
    "--output-stddev": "prompts.output_tokens.stddev",
    "--duration": "bounds.duration_seconds",
    "--max-requests": "bounds.max_requests",
    "--max-errors": "bounds.max_errors",
    "--max-error-rate": "bounds.max_error_rate",
    "--drain": "bounds.drain_seconds",
    "--timeout": "bounds.request_timeout_seconds",
    "--slo-ttft-ms": "slos.ttft_ms",
    "--slo-tpot-ms": "slos.tpot_ms",
    "--slo-e2el-ms": "slos.e2el_ms",
}


def config_from_options(values: dict[str, Any]) -> dict[str, Any]:
    """The configuration JSON from option values (keyed by option name; None: not given)."""
    config: dict[str, Any] = {}
    for option, path in OPTIONS.items():
        value = values.get(option)
        if value is None:
            continue
        node = config
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config


def _flatten(config: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for option, path in OPTIONS.items():
        node: Any = config
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            found[option] = node
    return found


def _format(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def rerun_command(
    kind: TargetKind, model: str, url: str | None, snapshot: dict[str, Any], config: dict[str, Any]
) -> str:
    """The benchmark as one `budapp bench run` line against the same target: an endpoint's
    first replica, budapp's gateway (the key from $BUDAPP_API_KEY) or the URL (its key from
    $OPENAI_API_KEY). Secrets never appear in it. Dataset prompts are read from a local file
    of the dataset's rows (download it first)."""
    if kind is TargetKind.ENDPOINT:
        base = (snapshot.get("base_urls") or ["http://REPLICA/v1"])[0]
        key_env = None
    elif kind is TargetKind.ROUTER:
        base = f"{snapshot.get('gateway_url', 'http://BUDAPP')}/v1"
        key_env = "BUDAPP_API_KEY"
    else:
        base = url or ""
        key_env = "OPENAI_API_KEY" if snapshot.get("credential_id") else None
    words = ["budapp", "bench", "run", "--url", base, "--model", model]
    if key_env:
        words += ["--api-key-env", key_env]
    prompts = config.get("prompts") or {}
    if prompts.get("kind") == "dataset":
        words += ["--prompts-file", "dataset.jsonl", "--prompts-column", str(prompts["column"])]
    for option, value in _flatten(config).items():
        words += [option, _format(value)]
    if config.get("exact_output") is False:
        words.append("--no-exact-output")
    return shlex.join(words)
