"""Per-runtime log files: the runtime writes to `<name>.log` itself (append mode); budapp caps
its size by copy-and-truncate into `<name>.log.1 ... .N`, which needs no help from the
runtime. Lines written between the copy and the truncation can be lost, as with logrotate's
copytruncate: a cost accepted for logs that survive budapp restarts."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

_TAIL_BLOCK = 64 * 1024


def rotate_if_large(path: Path, *, max_bytes: int, backups: int) -> bool:
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    for index in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{index + 1}"))
    if backups > 0:
        shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    with path.open("r+b") as handle:
        handle.truncate(0)
    return True


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of the log, reaching into the newest backup when the current
    file was just rotated."""
    found: list[str] = []
    for candidate in (path, path.with_name(f"{path.name}.1")):
        if len(found) >= lines:
            break
        found = _tail_of(candidate, lines - len(found)) + found
    return found[-lines:] if lines else []


def _tail_of(path: Path, lines: int) -> list[str]:
    if lines <= 0:
        return []
    with contextlib.suppress(FileNotFoundError), path.open("rb") as handle:
        size = handle.seek(0, 2)
        block = _TAIL_BLOCK
        while True:
            start = max(0, size - block)
            handle.seek(start)
            data = handle.read(size - start)
            chunks = data.splitlines()
            # The first chunk may be a partial line unless the read reached the start.
            if start > 0:
                chunks = chunks[1:]
            if len(chunks) >= lines or start == 0:
                return [chunk.decode("utf-8", "replace") for chunk in chunks[-lines:]]
            block *= 4
    return []
