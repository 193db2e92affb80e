"""Load benchmark of budapp-sim on one uvicorn worker, with wrk. Run it through benchmarks/sim.sh.

    python -m benchmarks.sim [--record]

Each scenario starts `budapp-sim` with its options on 127.0.0.1:$BENCH_PORT, checks one answer,
runs a warm-up, waits until the server is idle, then runs wrk $BENCH_REPEAT times and keeps the
fastest run (the one least disturbed by anything else on the machine). The table goes to
benchmarks/out/sim/results.md and, with --record, is appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import httpx

from benchmarks.report import parse_wrk

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "sim"
LUA = ROOT / "benchmarks" / "wrk" / "sim_post.lua"
SCRIPT = Path(sys.executable).with_name("budapp-sim")

HOST = "127.0.0.1"
PORT = int(os.environ.get("BENCH_PORT", "9391"))
DURATION = os.environ.get("BENCH_DURATION", "10s")
WARMUP = os.environ.get("BENCH_WARMUP", "3s")
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
# Scheduling priority of the server and wrk, as in run.sh: on a shared machine, e.g. -10 (root)
# keeps other jobs from disturbing the measurement as much.
NICE = ["nice", "-n", os.environ.get("BENCH_NICE", "0")]
CLK_TCK = os.sysconf("SC_CLK_TCK")

CHAT = {"model": "sim", "messages": [{"role": "user", "content": "Hello, how are you today?"}]}


@dataclass
class Scenario:
    name: str
    what: str
    options: list[str]
    path: str
    body: dict[str, object]
    connections: int = CONNECTIONS


SCENARIOS = [
    Scenario("chat", "chat, 16 tokens, no delays", [], "/v1/chat/completions", CHAT),
    Scenario(
        "chat-stream",
        "chat streamed, 16 tokens, no delays (chunks leave in one write)",
        [],
        "/v1/chat/completions",
        {**CHAT, "stream": True, "stream_options": {"include_usage": True}},
    ),
    Scenario(
        "completions", "completion, 16 tokens, no delays", [], "/v1/completions",
        {"model": "sim", "prompt": "Once upon a time"},
    ),
    Scenario(
        "embeddings", "embeddings, 1 input, 384 floats", [], "/v1/embeddings",
        {"model": "sim", "input": "Hello, how are you today?", "encoding_format": "float"},
    ),
    Scenario(
        "chat-stream-paced",
        "chat streamed, TTFT 20 ms, ITL 2 ms, 16 tokens (one write per token), 256 connections",
        ["--ttft-ms", "20", "--itl-ms", "2"],
        "/v1/chat/completions",
        {**CHAT, "stream": True},
        connections=256,
    ),
]  # fmt: skip


def server_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def machine_ticks() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(values)
    return total - values[3] - values[4], total


def wait_idle(pid: int) -> None:
    """Lets the server finish what the warm-up left in flight before a measured run."""
    for _ in range(120):
        before = server_ticks(pid)
        time.sleep(0.5)
        if server_ticks(pid) - before <= 2:
            return
    print("warning: the server did not become idle", file=sys.stderr)


def start(options: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDAPP_SIM_")}
    command = [str(SCRIPT), "--host", HOST, "--port", str(PORT), "--log-level", "warning"]
    process = subprocess.Popen(  # noqa: S603
        [*NICE, *command, *options], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"budapp-sim exited at start: {log.read_text()}")
        try:
            if httpx.get(f"http://{HOST}:{PORT}/health").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("budapp-sim did not become healthy")


def check(scenario: Scenario) -> None:
    """One request by hand, so that a broken server fails the run instead of being measured."""
    response = httpx.post(f"http://{HOST}:{PORT}{scenario.path}", json=scenario.body)
    response.raise_for_status()
    if scenario.body.get("stream"):
        assert response.text.endswith("data: [DONE]\n\n"), response.text[-200:]
    else:
        assert "usage" in response.json()


def wrk(scenario: Scenario, duration: str, output: Path | None) -> str:
    command = [
        *NICE, "wrk", "-t1", f"-c{scenario.connections}", f"-d{duration}", "--latency",
        "--timeout", "10s", "-s", str(LUA), f"http://{HOST}:{PORT}{scenario.path}",
    ]  # fmt: skip
    env = {**os.environ, "SIM_BODY": json.dumps(scenario.body)}
    text = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout  # noqa: S603
    if output is not None:
        output.write_text(text)
    return text


def measure(scenario: Scenario) -> dict[str, object]:
    print(f"== {scenario.name}: {scenario.what}", flush=True)
    process = start(scenario.options, OUT / f"{scenario.name}.server.log")
    try:
        check(scenario)
        wrk(scenario, WARMUP, None)
        wait_idle(process.pid)
        runs = []
        for run in range(1, REPEAT + 1):
            ticks, (busy, total) = server_ticks(process.pid), machine_ticks()
            started = time.monotonic()
            parsed = parse_wrk(wrk(scenario, DURATION, OUT / f"{scenario.name}.{run}.txt"))
            wall = time.monotonic() - started
            cpu_s = (server_ticks(process.pid) - ticks) / CLK_TCK
            busy_after, total_after = machine_ticks()
            parsed["server_cpu_percent"] = 100 * cpu_s / wall
            parsed["server_cpu_ms_per_request"] = 1e3 * cpu_s / max(parsed["requests"], 1)
            parsed["machine_cpu_percent"] = 100 * (busy_after - busy) / max(total_after - total, 1)
            runs.append(parsed)
            print(f"   run {run}: {parsed['rps']:,.0f} req/s, p50 {parsed['p50_ms']} ms")
            wait_idle(process.pid)
    finally:
        process.terminate()
        process.wait(15)
    best = max(runs, key=lambda parsed: parsed["rps"])
    return {**best, "runs_rps": [parsed["rps"] for parsed in runs]}


def background_load() -> float:
    busy, total = machine_ticks()
    time.sleep(2)
    busy_after, total_after = machine_ticks()
    return 100 * (busy_after - busy) / max(total_after - total, 1)


def markdown(results: dict[str, dict[str, object]], background: float, command: str) -> str:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)  # noqa: S607
    names = ("uvicorn", "uvloop", "httptools", "orjson", "prometheus-client")
    packages = ", ".join(f"{name} {version(name)}" for name in names)
    lines = [
        f"### {datetime.now(UTC):%Y-%m-%d}, commit `{commit}`",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d}, commit: `{commit}`",
        f"- machine: {os.cpu_count()} cores, {cpu}; Python {platform.python_version()}",
        f"- {packages}; {wrk_version.stdout.splitlines()[0].split(' Copyright')[0]}",
        f"- command: `{command}` (wrk -t1 -d{DURATION} --latency, best of {REPEAT} runs after a "
        f"{WARMUP} warm-up; one budapp-sim process, one uvicorn worker; wrk on the other core; "
        f"nice {NICE[-1]})",
        f"- background CPU load before the runs: {background:.1f}% of the machine",
        "",
        "| scenario | connections | req/s | p50 | p99 | server CPU | server CPU ms/req | "
        "machine CPU | errors | req/s of each run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for scenario in SCENARIOS:
        r = results[scenario.name]
        errors = int(r["non_2xx"]) + int(r["socket_errors"])  # type: ignore[call-overload]
        each = " / ".join(f"{rps:,.0f}" for rps in r["runs_rps"])  # type: ignore[attr-defined]
        lines.append(
            f"| {scenario.what} | {scenario.connections} | {r['rps']:,.0f} | {r['p50_ms']:.2f} ms "
            f"| {r['p99_ms']:.2f} ms | {r['server_cpu_percent']:.0f}% "
            f"| {r['server_cpu_ms_per_request']:.3f} | {r['machine_cpu_percent']:.0f}% "
            f"| {errors} | {each} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    parser.add_argument("--only", nargs="*", help="run only these scenarios (not recordable)")
    args = parser.parse_args()
    if args.record and args.only:
        raise SystemExit("a partial run is not recorded")
    OUT.mkdir(parents=True, exist_ok=True)
    background = background_load()
    print(f"== background CPU load: {background:.1f}% of the machine")
    if background > 10:
        print("warning: something else is using the CPU; the results will be noisy")
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    results = {scenario.name: measure(scenario) for scenario in chosen}
    if args.only:
        SCENARIOS[:] = chosen
    knobs = ("BENCH_NICE", "BENCH_REPEAT", "BENCH_CONNECTIONS", "BENCH_WARMUP", "BENCH_DURATION")
    command = " ".join(
        [*(f"{k}={os.environ[k]}" for k in knobs if k in os.environ), "benchmarks/sim.sh"]
    )
    table = markdown(results, background, command)
    (OUT / "results.md").write_text(table)
    print(table)
    if args.record:
        with (ROOT / "benchmarks" / "RESULTS.md").open("a") as results_file:
            results_file.write("\n" + table)
        print("== appended to benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
