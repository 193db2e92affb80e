"""Turns the wrk outputs of one `run.sh` run into a results table.

    python -m benchmarks.report OUT_DIR --db sqlite --command "benchmarks/run.sh sqlite"

Reads OUT_DIR/<scenario>.txt (wrk --latency output) and OUT_DIR/<scenario>.cpu (server CPU
ticks), writes OUT_DIR/results.json and OUT_DIR/results.md, and prints the markdown.
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


def _server_cpu(path: Path, requests: int) -> tuple[float | None, float | None]:
    """`ticks wall_seconds clk_tck` written by run.sh around the measured run."""
    if not path.exists():
        return None, None
    ticks, wall, clk_tck = path.read_text().split()
    cpu_seconds = int(ticks) / int(clk_tck)
    share = 100 * cpu_seconds / float(wall)
    per_request = 1e3 * cpu_seconds / requests if requests else None
    return round(share, 1), (round(per_request, 3) if per_request is not None else None)


def collect(out: Path) -> list[Result]:
    results = []
    for scenario, route in SCENARIOS:
        report = out / f"{scenario}.txt"
        if not report.exists():
            continue
        parsed = parse_wrk(report.read_text())
        cpu_share, cpu_per_request = _server_cpu(out / f"{scenario}.cpu", int(parsed["requests"]))
        results.append(
            Result(
                scenario=scenario,
                route=route,
                requests=int(parsed["requests"]),
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
            )
        )
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


def markdown(database: str, results: list[Result], env: dict[str, str], command: str) -> str:
    by_name = {result.scenario: result for result in results}
    ceiling = by_name.get(CEILING)
    lines = [
        f"### {database}",
        "",
        f"- date: {env['date']}, commit: `{env['commit']}`",
        f"- machine: {env['cpu']}; Python {env['python']}; {env['database']}",
        f"- {env['packages']}; {env['load_tool'].split(' Copyright')[0]}",
        f"- command: `{command}` ({os.environ.get('BENCH_SETTINGS', '')})",
        "",
        "| scenario | req/s | p50 | p99 | % of ceiling | server CPU | CPU ms/req | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        if result.scenario in SEPARATE:
            share = "n/a (argon2)"
        elif ceiling is None:
            share = "?"
        else:
            share = f"{100 * result.rps / ceiling.rps:.1f}%"
        errors = result.non_2xx + result.socket_errors
        cpu = "?" if result.server_cpu_percent is None else f"{result.server_cpu_percent:.0f}%"
        per_request = (
            "?"
            if result.server_cpu_ms_per_request is None
            else f"{result.server_cpu_ms_per_request:.2f}"
        )
        lines.append(
            f"| {result.route} | {result.rps:,.0f} | {result.p50_ms:.2f} ms "
            f"| {result.p99_ms:.2f} ms | {share} | {cpu} | {per_request} | {errors} |"
        )
    target = by_name.get(TARGET)
    if ceiling is not None and target is not None:
        share = target.rps / ceiling.rps
        verdict = "met" if share >= TARGET_SHARE else "NOT met"
        lines += [
            "",
            f"Target (GET /projects >= {TARGET_SHARE:.0%} of the ceiling): **{verdict}** "
            f"({share:.1%}).",
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
    text = markdown(args.db, results, env, args.command)
    payload = {"database": args.db, "environment": env, "results": [asdict(r) for r in results]}
    (args.out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
