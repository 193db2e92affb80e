"""Gateway benchmark: budapp-sim called directly and through `budapp gateway`, with wrk.

    python -m benchmarks.gateway [--record]

Starts budapp-sim (no delays, 16 tokens) and `budapp serve` on a fresh SQLite database to
create a project, an API key, a router over the simulator and rate limits high enough never to
refuse (so the limiter runs on every request without changing the answer); then stops serve and
starts `budapp gateway` alone on the same database. Each scenario runs wrk with 1 connection
(latency: the gateway's added p50/p99 is the difference from the direct call) and with
$BENCH_CONNECTIONS connections (sustained req/s), for chat completions streamed and not. Every
answer must be a 200: any error fails the row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks.report import parse_wrk

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "gateway"
LUA = ROOT / "benchmarks" / "wrk" / "gateway_post.lua"
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
SIM_PORT, SERVE_PORT, GATEWAY_PORT, LITELLM_PORT = 9491, 9492, 9493, 9494
# Optional: the `litellm` executable of a LiteLLM Proxy install (e.g. a separate venv with
# `pip install 'litellm[proxy]'`), measured the same way, against the same simulator.
LITELLM = os.environ.get("BENCH_LITELLM", "")
LITELLM_KEY = "sk-bench-master-key"
# Optional: also measure the gateway inside `budapp serve` (mounted at /v1 behind the
# management app's middleware), beside the standalone `budapp gateway`.
SERVE_TOO = os.environ.get("BENCH_SERVE", "") == "1"
DURATION = os.environ.get("BENCH_DURATION", "10s")
WARMUP = os.environ.get("BENCH_WARMUP", "2s")
REPEAT = int(os.environ.get("BENCH_REPEAT", "2"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
PASSWORD = "benchmark-password-1"
CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "Hello, how are you today?"}]}


def budapp_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDAPP_")}
    return {
        **env,
        "BUDAPP_DATA_DIR": str(OUT / "data"),
        "BUDAPP_ADMIN_PASSWORD": PASSWORD,
        "BUDAPP_LOG_LEVEL": "WARNING",
        "BUDAPP_ACCESS_LOG": "false",
        "BUDAPP_LOCAL_CLUSTER_AUTO_REGISTER": "false",
    }


def start(
    command: list[str],
    port: int,
    log: str,
    env: dict[str, str] | None = None,
    health: str = "/health",
) -> Any:
    process = subprocess.Popen(  # noqa: S603
        command, env=env, stdout=(OUT / log).open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{command[0]} exited at start: {(OUT / log).read_text()[-2000:]}")
        try:
            if httpx.get(f"http://{HOST}:{port}{health}").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{command[0]} did not become healthy")


def stop(process: Any) -> None:
    process.terminate()
    process.wait(30)


def seed() -> tuple[str, str]:
    """A project, an API key, a router over the simulator and generous limits; via the API."""
    with httpx.Client(base_url=f"http://{HOST}:{SERVE_PORT}", timeout=30) as http:
        login = http.post("/auth/login", json={"email": "admin@budapp.local", "password": PASSWORD})
        login.raise_for_status()
        http.headers["Authorization"] = f"Bearer {login.json()['data']['access_token']}"
        project = http.post("/projects", json={"name": "bench"}).json()["data"]["id"]
        key = http.post(f"/projects/{project}/api-keys", json={"name": "bench"})
        router = {
            "name": "bench",
            "targets": [
                {"kind": "url", "base_url": f"http://{HOST}:{SIM_PORT}/v1", "model": "sim"}
            ],
        }
        http.post(f"/projects/{project}/routers", json=router).raise_for_status()
        limits = {"rpm": 10**9, "tpm": 10**12, "key_rpm": 10**9, "key_tpm": 10**12}
        http.put(f"/projects/{project}/rate-limits", json=limits).raise_for_status()
        return key.json()["data"]["key"], project


def wrk(  # noqa: PLR0917 - one wrk run and its every knob
    url: str, body: dict[str, Any], key: str, connections: int, duration: str, name: str
) -> str:
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{duration}", "--latency", "--timeout", "10s",
        "-s", str(LUA), url,
    ]  # fmt: skip
    env = {**os.environ, "SIM_BODY": json.dumps(body), "GATEWAY_KEY": key}
    text = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout  # noqa: S603
    if name:
        (OUT / f"{name}.txt").write_text(text)
    return text


def measure(
    name: str, url: str, body: dict[str, Any], key: str, connections: int
) -> dict[str, Any]:
    wrk(url, body, key, connections, WARMUP, "")
    runs = []
    for run in range(1, REPEAT + 1):
        parsed = parse_wrk(wrk(url, body, key, connections, DURATION, f"{name}.{run}"))
        if parsed["non_2xx"] or parsed["socket_errors"]:
            raise SystemExit(f"{name}: errors in run {run}: {parsed}")
        runs.append(parsed)
        print(
            f"   {name} run {run}: {parsed['rps']:,.0f} req/s, p50 {parsed['p50_ms']} ms, "
            f"p99 {parsed['p99_ms']} ms",
            flush=True,
        )
    return max(runs, key=lambda parsed: parsed["rps"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    sim_command = [str(BIN / "budapp-sim"), "--host", HOST, "--port", str(SIM_PORT),
                   "--log-level", "warning"]  # fmt: skip
    sim = start(sim_command, SIM_PORT, "sim.log")
    try:
        serve = start([str(BIN / "budapp"), "serve", "--port", str(SERVE_PORT)], SERVE_PORT,
                      "serve.log", budapp_env())  # fmt: skip
        try:
            key, _ = seed()
            # For profiling by hand against the same database (see benchmarks/README.md).
            (OUT / "key.txt").write_text(key)
        finally:
            if not SERVE_TOO:
                stop(serve)
        gateway = start([str(BIN / "budapp"), "gateway", "--port", str(GATEWAY_PORT)],
                        GATEWAY_PORT, "gateway.log", budapp_env())  # fmt: skip
        litellm = start_litellm() if LITELLM else None
        try:
            results = run_scenarios(key)
            usage = metered(gateway)
        finally:
            stop(gateway)
            if SERVE_TOO:
                stop(serve)
            if litellm is not None:
                stop(litellm)
    finally:
        stop(sim)
    table = markdown(results, usage)
    (OUT / "results.md").write_text(table)
    print(table)
    if args.record:
        with (ROOT / "benchmarks" / "RESULTS.md").open("a") as results_file:
            results_file.write("\n" + table)


def start_litellm() -> Any:
    """LiteLLM Proxy without a database, one worker, pointed at the same simulator."""
    config = OUT / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: bench\n"
        "    litellm_params:\n"
        "      model: openai/sim\n"
        f"      api_base: http://{HOST}:{SIM_PORT}/v1\n"
        "      api_key: sim\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
    )
    command = [LITELLM, "--config", str(config), "--host", HOST, "--port", str(LITELLM_PORT),
               "--num_workers", "1"]  # fmt: skip
    env = {**os.environ, "LITELLM_LOG": "ERROR"}
    return start(command, LITELLM_PORT, "litellm.log", env, health="/health/liveliness")


def run_scenarios(key: str) -> dict[tuple[str, str, int], dict[str, Any]]:
    proxies = [("direct", SIM_PORT, "sim", ""), ("gateway", GATEWAY_PORT, "bench", key)]
    if SERVE_TOO:
        proxies.append(("serve", SERVE_PORT, "bench", key))
    if LITELLM:
        proxies.append(("litellm", LITELLM_PORT, "bench", LITELLM_KEY))
    results = {}
    for kind, body in (("chat", CHAT), ("chat-stream", {**CHAT, "stream": True})):
        for connections in (1, CONNECTIONS):
            for where, port, model, token in proxies:
                url = f"http://{HOST}:{port}/v1/chat/completions"
                name = f"{kind}-{where}-c{connections}"
                print(f"== {name}", flush=True)
                results[(kind, where, connections)] = measure(
                    name, url, {**body, "model": model}, token, connections
                )
    return results


def metered(gateway: Any) -> str:
    """Lets the meter flush, then reads what the gateway's own /metrics counted."""
    del gateway
    time.sleep(3)
    text = httpx.get(f"http://{HOST}:{GATEWAY_PORT}/metrics").text
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("budapp_gateway_requests_total{")
    )
    return f"{total:,.0f}"


def markdown(results: dict[tuple[str, str, int], dict[str, Any]], metered_calls: str) -> str:
    commit = subprocess.run(
        ["/usr/bin/git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    lines = [
        f"### Gateway, {datetime.now(UTC):%Y-%m-%d}, commit `{commit}`",
        "",
        f"`benchmarks/gateway.sh`: budapp-sim (no delays, 16 tokens) on {platform.node()} "
        f"({os.cpu_count()} CPUs, shared), wrk 1 thread, {DURATION} runs, best of {REPEAT}; "
        "`budapp gateway` (one uvicorn worker, SQLite, in-process limiter) with usage metering "
        "and rate limits on (limits set far above the load, so every request is checked and "
        f"none refused). Gateway calls counted by its /metrics: {metered_calls}.",
        "",
        "| scenario | connections | path | req/s | p50 / p99 ms | added p50 / p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for (kind, where, connections), row in results.items():
        direct = results[(kind, "direct", connections)]
        added = (
            "—"
            if where == "direct"
            else f"{row['p50_ms'] - direct['p50_ms']:.2f} / {row['p99_ms'] - direct['p99_ms']:.2f}"
        )
        label = {
            "direct": "budapp-sim directly",
            "gateway": "budapp gateway",
            "serve": "budapp serve (/v1)",
        }.get(where, "LiteLLM Proxy")
        lines.append(
            f"| {kind} | {connections} | {label} | {row['rps']:,.0f} "
            f"| {row['p50_ms']:.2f} / {row['p99_ms']:.2f} | {added} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
