"""Processes of model runtimes, as the operating system sees them: spawned in a session of
their own, recognised across budapp restarts by pid + create time + a mark in their
environment, and ended as a whole process group.

A pid alone is never trusted: once a process is gone the kernel reuses its number, and killing
whatever holds it now would hit an innocent process."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import psutil
from pydantic import BaseModel, ConfigDict, TypeAdapter

from budapp.adapters.clusters.base import ProviderError, RuntimeSpec

MARK_VARIABLE = "BUDAPP_RUNTIME_MARK"
# /proc start times are in clock ticks (10 ms); psutil derives the same float every time.
_CREATE_TIME_TOLERANCE = 0.01


class ProcessRecord(BaseModel):
    """What budapp remembers of a runtime it launched, in the state file."""

    model_config = ConfigDict(frozen=True)

    spec: RuntimeSpec
    pid: int
    create_time: float
    mark: str
    port: int


_RECORDS = TypeAdapter(dict[str, ProcessRecord])


class StateFile:
    """`<runtime_dir>/state.json`: the runtimes the last budapp process launched, written
    atomically after every change so that a crash leaves the previous or the next version."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, ProcessRecord]:
        try:
            return _RECORDS.validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError:
            # A state file budapp cannot read names nothing it may safely kill.
            broken = self.path.with_suffix(f".broken-{int(time.time())}")
            self.path.replace(broken)
            return {}

    def save(self, records: dict[str, ProcessRecord]) -> None:
        temporary = self.path.with_suffix(".tmp")
        payload = {key: record.model_dump(mode="json") for key, record in records.items()}
        temporary.write_text(json.dumps(payload, indent=1), encoding="utf-8")
        os.replace(temporary, self.path)


class SupervisorBusy(ProviderError):
    """Another process already supervises runtimes in this directory."""


def lock_directory(directory: Path) -> IO[bytes]:
    """An exclusive lock on `<directory>/supervisor.lock`, held while the returned file is
    open (released by the kernel if the process dies)."""
    handle = (directory / "supervisor.lock").open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SupervisorBusy(
            f"another budapp process supervises the runtimes in {directory}"
        ) from None
    return handle


def resolve_executable(name: str, search_path: str | None) -> str:
    """`name` on the runtime's PATH, else next to budapp's own interpreter: console scripts
    installed with budapp (`budapp-sim`) are found even when its virtual environment is not
    on PATH (budapp started by the full path of its executable)."""
    found = shutil.which(name, path=search_path) or shutil.which(
        name, path=str(Path(sys.executable).parent)
    )
    return found or name


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Starts `argv` in a new session (its own process group), output appended to the log
    file directly: the runtime keeps writing there even if budapp dies."""
    executable = resolve_executable(argv[0], env.get("PATH"))
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - argv comes from a vetted template
            [executable, *argv[1:]],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )


def create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def is_alive(pid: int, started: float) -> bool:
    """The process `pid` exists, is the one created at `started`, and has not exited."""
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - started) > _CREATE_TIME_TOLERANCE:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def has_mark(pid: int, mark: str) -> bool:
    try:
        return psutil.Process(pid).environ().get(MARK_VARIABLE) == mark
    except psutil.Error:
        return False


def is_ours(record: ProcessRecord) -> bool:
    return is_alive(record.pid, record.create_time) and has_mark(record.pid, record.mark)


def group_members(pgid: int, mark: str) -> list[int]:
    """Live processes of process group `pgid` that carry our mark: what is left of a runtime
    whose leader has died (workers it forked)."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and has_mark(process.pid, mark):
                members.append(process.pid)
        except (OSError, psutil.Error):
            continue
    return members


def signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def kill_pids(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True
