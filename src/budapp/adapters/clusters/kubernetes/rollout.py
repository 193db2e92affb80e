"""What a runtime's pod and its events say about the rollout, in the terms budapp reports:
scheduled or not (and why), the image pulled or not (and whether retrying can help), the
container running, crashing (OOMKilled, CrashLoopBackOff) or ready."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_PULL_WAITING = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
_PULL_FINAL = frozenset({"InvalidImageName", "ErrImageNeverPull"})
# What registries answer for an image that does not exist (containerd, CRI-O, Docker):
# waiting for it helps nothing.
_NOT_FOUND = ("not found", "manifest unknown", "does not exist", "repository does not exist")


@dataclass(frozen=True)
class PodReport:
    node: str | None
    scheduled: bool
    unscheduled: str
    pull_error: str | None
    pull_error_final: bool
    pulled: bool
    running: bool
    ready: bool
    crashing: bool
    restarts: int
    last_exit: str | None
    summary: str

    def crash_message(self, limit: int) -> str:
        if self.last_exit == "OOMKilled":
            return (
                f"the container ran out of memory (OOMKilled) and restarted {self.restarts} "
                f"time(s): give it more memory (the cluster's memory_request) or a smaller model"
            )
        return (
            f"the container keeps crashing (CrashLoopBackOff, {self.restarts} restarts, at most "
            f"{limit}): last exit {self.last_exit or 'unknown'}; read the runtime's logs"
        )


def read_pod(pod: dict[str, Any], events: list[dict[str, Any]]) -> PodReport:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    scheduled = (conditions.get("PodScheduled") or {}).get("status") == "True"
    reasons = [e for e in events if e.get("type") == "Warning"]
    unscheduled = _latest(reasons, "FailedScheduling") or (
        (conditions.get("PodScheduled") or {}).get("message") or "waiting for the scheduler"
    )
    container: dict[str, Any] = next(iter(status.get("containerStatuses") or []), {})
    state = container.get("state") or {}
    waiting = state.get("waiting") or {}
    last = (container.get("lastState") or {}).get("terminated") or state.get("terminated") or {}
    pull_error: str | None = None
    final = False
    if waiting.get("reason") in _PULL_WAITING:
        detail = _latest(reasons, "Failed") or waiting.get("message") or waiting["reason"]
        pull_error = f"{waiting['reason']}: {detail}"
        final = waiting["reason"] in _PULL_FINAL or any(
            marker in detail.lower() for marker in _NOT_FOUND
        )
    pulled = any(e.get("reason") == "Pulled" for e in events) or bool(
        state.get("running") or state.get("terminated") or container.get("imageID")
    )
    restarts = int(container.get("restartCount") or 0)
    crashing = waiting.get("reason") == "CrashLoopBackOff" or last.get("reason") == "OOMKilled"
    ready = (conditions.get("Ready") or {}).get("status") == "True"
    exit_reason = last.get("reason")
    if exit_reason and exit_reason != "OOMKilled" and last.get("exitCode") is not None:
        exit_reason = f"{exit_reason} (code {last['exitCode']})"
    if not scheduled:
        summary = f"not scheduled: {unscheduled}"
    elif pull_error:
        summary = pull_error
    elif crashing:
        summary = f"crashing: {exit_reason or waiting.get('reason')} ({restarts} restarts)"
    elif ready:
        summary = "ready"
    else:
        summary = waiting.get("reason") or (
            "running, not ready" if state.get("running") else "starting"
        )
    return PodReport(
        node=spec.get("nodeName"),
        scheduled=scheduled,
        unscheduled=unscheduled,
        pull_error=pull_error,
        pull_error_final=final,
        pulled=pulled and not pull_error,
        running=bool(state.get("running")),
        ready=ready,
        crashing=crashing,
        restarts=restarts,
        last_exit=exit_reason,
        summary=summary,
    )


def _latest(events: list[dict[str, Any]], reason: str) -> str | None:
    matching = [e for e in events if e.get("reason") == reason]
    if not matching:
        return None
    newest = max(matching, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return str(newest.get("message") or reason)
