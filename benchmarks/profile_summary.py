"""Summarises a py-spy `--format raw --threads` profile of the benchmark server.

    python -m benchmarks.profile_summary benchmarks/out/sqlite/projects.pyspy.txt

Prints where the sampled time went: per thread group (the event loop, the database driver's
threads, the thread pool), then, for the event loop thread, per component (each sample goes
to the innermost frame that belongs to a known library), then the top frames by own time.
Samples of threads waiting for work are counted apart as idle (best effort, by frame name).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# Innermost matching frame wins; order matters only between patterns of the same frame.
COMPONENTS = [
    ("password hashing (argon2)", ("argon2/", "pwdlib/")),
    ("JWT decode/verify (pyjwt, cryptography)", ("jwt/", "cryptography/")),
    ("database driver (aiosqlite/sqlite3, asyncpg)", ("aiosqlite/", "asyncpg/", "sqlite3/")),
    ("SQLAlchemy (ORM, Core, pool, greenlet bridge)", ("sqlalchemy/",)),
    ("pydantic (validation, serialisation)", ("pydantic/", "pydantic_core/")),
    ("sync dependencies in the thread pool (anyio)", ("anyio/", "starlette/concurrency.py")),
    ("FastAPI dependencies and routing", ("fastapi/",)),
    ("Starlette", ("starlette/",)),
    ("uvicorn (HTTP protocol)", ("uvicorn/",)),
    ("budapp code", ("budapp/",)),
    ("asyncio event loop", ("asyncio/", "selectors.py")),
]
IDLE_LEAVES = (
    # Under uvloop the loop's wait for I/O (C code, invisible to py-spy) is this frame.
    "Runner.run (asyncio/runners.py",
    "select (selectors.py",
    "Condition.wait (threading.py",
    "Queue.get (queue.py",
    "_worker (concurrent/futures/thread.py",
    "aiosqlite/core.py:59)",
)
_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*)\)$")


def _file(frame: str) -> str:
    match = _FRAME.match(frame)
    return match.group("file") if match else frame


def _component(frames: list[str]) -> str:
    for frame in reversed(frames):
        file = _file(frame)
        for name, patterns in COMPONENTS:
            if any(pattern in file for pattern in patterns):
                return name
    return "other"


def _group(thread: str) -> str:
    if "MainThread" in thread:
        return "event loop (main thread)"
    if "_connection_worker_thread" in thread:
        return "aiosqlite connection threads"
    if "AnyIO worker thread" in thread:
        return "anyio thread pool (sync dependencies)"
    if "asyncio_" in thread or "ThreadPoolExecutor" in thread:
        return "asyncio default executor (argon2)"
    return thread


def summarise(path: Path, top: int) -> str:
    groups: Counter[str] = Counter()
    idle: Counter[str] = Counter()
    components: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread, frames = frames[0], frames[1:]
        group = _group(thread)
        if len(frames) >= 1 and any(leaf in frames[-1] for leaf in IDLE_LEAVES):
            idle[group] += int(count)
            continue
        groups[group] += int(count)
        if group.startswith("event loop") and frames:
            components[_component(frames)] += int(count)
            own[frames[-1]] += int(count)
    lines = [f"py-spy profile: {path}", "", "busy samples per thread group (idle apart):"]
    for group, count in groups.most_common():
        lines.append(f"  {count:7d}  {group}  (idle: {idle[group]})")
    loop_total = sum(components.values()) or 1
    lines += ["", "event loop thread, by component (innermost known frame):"]
    for name, count in components.most_common():
        lines.append(f"  {100 * count / loop_total:5.1f}%  {name}")
    lines += ["", f"event loop thread, top {top} frames by own time:"]
    for frame, count in own.most_common(top):
        lines.append(f"  {100 * count / loop_total:5.1f}%  {frame}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Summarise a py-spy raw profile.")
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print(summarise(args.profile, args.top))


if __name__ == "__main__":
    main()
