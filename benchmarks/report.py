"""Turns the wrk outputs of one `run.sh` run into a results table.

    python -m benchmarks.report OUT_DIR --db sqlite --command "benchmarks/run.sh sqlite"

Reads OUT_DIR/<scenario>.<run>.txt (wrk --latency output) and OUT_DIR/<scenario>.<run>.cpu (CPU
ticks), keeps the fastest run of each scenario (the least disturbed by anything else on the
machine), writes OUT_DIR/results.json and OUT_DIR/results.md, and prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sqlite3
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

# Scenario name, method and path, in the order run.sh runs them.
SCENARIOS = [
    ("hello", "GET /bench/hello"),
    ("me", "GET /auth/me"),
    ("projects", "GET /projects"),
    ("login", "POST /auth/login"),
]
CEILING = "hello"
TARGET = "projects"
TARGET_SHARE = 0.40
# Not compared with the ceiling: bound by argon2 by design.
SEPARATE = {"login"}

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


@dataclass
class Result:
    scenario: str
    route: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    server_cpu_percent: float | None
    server_cpu_ms_per_request: float | None
    machine_cpu_percent: float | None
    # req/s of every measured run, in order; the fields above are those of the fastest.
    runs_rps: list[float]


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(text: str) -> dict[str, float]:
    """Requests/sec, the --latency percentiles and the error counts of one wrk run."""
    parsed: dict[str, float] = {}
    for percent in ("50", "75", "90", "99"):
        match = re.search(rf"^\s+{percent}(?:\.0+)?%\s+{_DURATION}\s*$", text, re.MULTILINE)
        if match is None:
            raise ValueError(f"no {percent}% line in the latency distribution (run with --latency)")
        parsed[f"p{percent}_ms"] = _ms(match.group(1), match.group(2))
    total = re.search(r"(\d+) requests in " + _DURATION, text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if total is None or rps is None:
        raise ValueError("not a wrk report")
    parsed["requests"] = int(total.group(1))
    parsed["seconds"] = _ms(total.group(2), total.group(3)) / 1e3
    parsed["rps"] = float(rps.group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    parsed["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    parsed["socket_errors"] = sum(int(n) for n in errors.groups()) if errors else 0
    return parsed


def _cpu(path: Path, requests: int) -> tuple[float | None, float | None, float | None]:
    """Server CPU (% of one core, ms per request) and machine CPU (% of all cores) from
    `server_ticks wall_seconds clk_tck busy0 total0 busy1 total1`, written by run.sh."""
    if not path.exists():
        return None, None, None
    fields = path.read_text().split()
    ticks, wall, clk_tck = int(fields[0]), float(fields[1]), int(fields[2])
    cpu_seconds = ticks / clk_tck
    share = round(100 * cpu_seconds / wall, 1)
    per_request = round(1e3 * cpu_seconds / requests, 3) if requests else None
    machine = None
    if len(fields) >= 7:
        busy0, total0, busy1, total1 = (int(value) for value in fields[3:7])
        machine = round(100 * (busy1 - busy0) / max(total1 - total0, 1), 1)
    return share, per_request, machine


def _measure(report: Path, scenario: str, route: str) -> Result:
    parsed = parse_wrk(report.read_text())
    requests = int(parsed["requests"])
    cpu_share, cpu_per_request, machine = _cpu(report.with_suffix(".cpu"), requests)
    return Result(
        scenario=scenario,
        route=route,
        requests=requests,
        seconds=parsed["seconds"],
        rps=parsed["rps"],
        p50_ms=parsed["p50_ms"],
        p75_ms=parsed["p75_ms"],
        p90_ms=parsed["p90_ms"],
        p99_ms=parsed["p99_ms"],
        non_2xx=int(parsed["non_2xx"]),
        socket_errors=int(parsed["socket_errors"]),
        server_cpu_percent=cpu_share,
        server_cpu_ms_per_request=cpu_per_request,
        machine_cpu_percent=machine,
        runs_rps=[parsed["rps"]],
    )


def collect(out: Path) -> list[Result]:
    results = []
    for scenario, route in SCENARIOS:
        reports = sorted(
            out.glob(f"{scenario}.*.txt"), key=lambda path: int(path.suffixes[0][1:] or 0)
        )
        reports = [path for path in reports if path.suffixes[0][1:].isdigit()]
        if not reports:
            continue
        runs = [_measure(report, scenario, route) for report in reports]
        best = max(runs, key=lambda run: run.rps)
        best.runs_rps = [run.rps for run in runs]
        results.append(best)
    return results


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _run(*command: str) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    except OSError:
        return "unknown"
    lines = (completed.stdout or completed.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def environment(database: str) -> dict[str, str]:
    from importlib.metadata import version  # noqa: PLC0415

    packages = ("fastapi", "starlette", "uvicorn", "pydantic", "sqlalchemy", "aiosqlite", "asyncpg")
    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "commit": _run("git", "rev-parse", "--short", "HEAD"),
        "cpu": f"{os.cpu_count()} cores, {_cpu_model()}",
        "python": platform.python_version(),
        "packages": ", ".join(f"{name} {version(name)}" for name in packages),
        "load_tool": _run("wrk", "-v"),
    }
    if database == "sqlite":
        info["database"] = f"SQLite {sqlite3.sqlite_version} (file, WAL)"
    else:
        info["database"] = "PostgreSQL " + os.environ.get("BENCH_POSTGRES_VERSION", "?")
    return info


def _percent(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}%"


def markdown(
    database: str, results: list[Result], env: dict[str, str], command: str, background: str
) -> str:
    by_name = {result.scenario: result for result in results}
    ceiling = by_name.get(CEILING)
    lines = [
        f"### {database}",
        "",
        f"- date: {env['date']}, commit: `{env['commit']}`",
        f"- machine: {env['cpu']}; Python {env['python']}; {env['database']}",
        f"- {env['packages']}; {env['load_tool'].split(' Copyright')[0]}",
        f"- command: `{command}` ({os.environ.get('BENCH_SETTINGS', '')})",
        f"- background CPU load before the runs: {background}% of the machine",
        "",
        "| scenario | req/s | p50 | p99 | % of ceiling "
        "| server CPU | server CPU ms/req | machine CPU | errors | req/s of each run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for result in results:
        if result.scenario in SEPARATE:
            share = "n/a (argon2)"
        elif ceiling is None:
            share = "?"
        else:
            share = f"{100 * result.rps / ceiling.rps:.1f}%"
        per_request = (
            "?"
            if result.server_cpu_ms_per_request is None
            else f"{result.server_cpu_ms_per_request:.2f}"
        )
        lines.append(
            f"| {result.route} | {result.rps:,.0f} | {result.p50_ms:.2f} ms "
            f"| {result.p99_ms:.2f} ms | {share} | {_percent(result.server_cpu_percent)} "
            f"| {per_request} | {_percent(result.machine_cpu_percent)} "
            f"| {result.non_2xx + result.socket_errors} "
            f"| {' / '.join(f'{rps:,.0f}' for rps in result.runs_rps)} |"
        )
    target = by_name.get(TARGET)
    if ceiling is not None and target is not None:
        share = target.rps / ceiling.rps
        verdict = "met" if share >= TARGET_SHARE else "NOT met"
        lines += [
            "",
            f"Target (GET /projects >= {TARGET_SHARE:.0%} of the ceiling's req/s): "
            f"**{verdict}** ({share:.1%}).",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="Summarise one benchmark run.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--db", required=True, choices=["sqlite", "postgres"])
    parser.add_argument("--command", required=True)
    args = parser.parse_args()
    results = collect(args.out)
    if not results:
        raise SystemExit(f"no wrk reports in {args.out}")
    env = environment(args.db)
    background_file = args.out / "background.txt"
    background = background_file.read_text().strip() if background_file.exists() else "?"
    text = markdown(args.db, results, env, args.command, background)
    payload = {
        "database": args.db,
        "environment": env,
        "background_cpu_percent": background,
        "results": [asdict(result) for result in results],
    }
    (args.out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
