"""Each replica's in-memory copy of a project's routing table (routers, their targets and
the project's limits), loaded on first use and dropped when the project's routers or limits
change (an event on the bus) or after a TTL, so the hot path reads no database."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.adapters.events import EventBus
from budapp.core.logging import get_logger
from budapp.credentials.service import CredentialVault, secrets_for_project
from budapp.routers.models import Router, Strategy
from budapp.routers.service import CHANGED_TOPIC, routing_table

log = get_logger("budapp.gateway")


@dataclass(slots=True, eq=False)
class TargetState:
    """A target and what this replica has observed of it."""

    label: str
    kind: str
    base_url: str | None
    endpoint_id: uuid.UUID | None
    model: str
    weight: float
    priority: int
    timeout: float
    rpm: int | None
    tpm: int | None
    authorization: str | None = None
    # A url target whose credential cannot be read is unavailable, not sent unauthenticated.
    broken: bool = False
    in_flight: int = 0
    latency: float | None = None
    cooldown_until: float = 0.0
    replica_turn: int = 0
    # An endpoint target without a `model` of its own sends the name its replicas serve.
    served_model: bool = False

    def observe(self, seconds: float) -> None:
        # Exponentially weighted: recent calls count most, one slow call does not dominate.
        self.latency = seconds if self.latency is None else 0.8 * self.latency + 0.2 * seconds


@dataclass(slots=True, eq=False)
class RouterConfig:
    id: uuid.UUID
    name: str
    strategy: Strategy
    # Targets grouped by priority, lowest (tried first) first.
    groups: list[list[TargetState]]
    fallback_on: frozenset[str]
    cooldown_seconds: float
    max_attempts: int
    turn: int = 0


@dataclass(slots=True)
class ProjectConfig:
    routers: dict[str, RouterConfig]
    rpm: int | None = None
    tpm: int | None = None
    key_rpm: int | None = None
    key_tpm: int | None = None
    expires: float = field(default=0.0)


class RoutingCache:
    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        vault: CredentialVault,
        bus: EventBus,
        *,
        ttl_seconds: float,
    ) -> None:
        self._factory = factory
        self._vault = vault
        self._ttl = ttl_seconds
        self._entries: dict[uuid.UUID, ProjectConfig] = {}
        self._loading: dict[uuid.UUID, asyncio.Future[ProjectConfig]] = {}
        self._changes = 0
        bus.subscribe(CHANGED_TOPIC, self._on_changed)

    async def get(self, project_id: uuid.UUID, organization_id: uuid.UUID) -> ProjectConfig:
        entry = self._entries.get(project_id)
        if entry is not None and entry.expires > time.monotonic():
            return entry
        # One load per project at a time: a burst on a cold cache is one query, not hundreds.
        pending = self._loading.get(project_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ProjectConfig] = asyncio.get_running_loop().create_future()
        self._loading[project_id] = future
        try:
            heard = self._changes
            config = await self._load(project_id, organization_id, previous=entry)
            # A change heard during the load may not be in what was read: use, don't keep.
            if heard == self._changes:
                self._entries[project_id] = config
            future.set_result(config)
            return config
        except BaseException as exc:
            future.set_exception(exc)
            # Nobody else may be waiting: do not leave "exception never retrieved" behind.
            with contextlib.suppress(BaseException):
                future.exception()
            raise
        finally:
            del self._loading[project_id]

    def forget(self, project_id: uuid.UUID) -> None:
        self._entries.pop(project_id, None)

    async def _load(
        self, project_id: uuid.UUID, organization_id: uuid.UUID, previous: ProjectConfig | None
    ) -> ProjectConfig:
        async with self._factory() as session:
            routers, limits = await routing_table(session, project_id)
            secrets: dict[uuid.UUID, dict[str, Any] | None] = {}
            for router in routers:
                for target in router.targets:
                    credential_id = target.get("credential_id")
                    if credential_id and uuid.UUID(credential_id) not in secrets:
                        secrets[uuid.UUID(credential_id)] = await secrets_for_project(
                            session,
                            self._vault,
                            organization_id,
                            project_id,
                            uuid.UUID(credential_id),
                        )
        config = ProjectConfig(
            routers={r.name: _router_config(r, secrets, previous) for r in routers},
            expires=time.monotonic() + self._ttl,
        )
        if limits is not None:
            config.rpm, config.tpm = limits.rpm, limits.tpm
            config.key_rpm, config.key_tpm = limits.key_rpm, limits.key_tpm
        return config

    def _on_changed(self, payload: dict[str, Any] | None) -> None:
        self._changes += 1
        if payload is None:
            self._entries.clear()
            return
        with contextlib.suppress(ValueError, KeyError, TypeError):
            self.forget(uuid.UUID(str(payload["project_id"])))


def _router_config(
    router: Router,
    secrets: dict[uuid.UUID, dict[str, Any] | None],
    previous: ProjectConfig | None,
) -> RouterConfig:
    # What this replica learnt of the targets (cooldowns, latencies) survives a reload.
    known: dict[str, TargetState] = {}
    if previous is not None and router.name in previous.routers:
        for group in previous.routers[router.name].groups:
            known.update({t.label: t for t in group})
    states = [_target_state(router, i, t, secrets, known) for i, t in enumerate(router.targets)]
    priorities = sorted({s.priority for s in states})
    return RouterConfig(
        id=router.id,
        name=router.name,
        strategy=Strategy(router.strategy),
        groups=[[s for s in states if s.priority == p] for p in priorities],
        fallback_on=frozenset(router.fallback_on),
        cooldown_seconds=router.cooldown_seconds,
        max_attempts=router.max_attempts,
    )


def _target_state(
    router: Router,
    index: int,
    target: dict[str, Any],
    secrets: dict[uuid.UUID, dict[str, Any] | None],
    known: dict[str, TargetState],
) -> TargetState:
    kind = target["kind"]
    where = target.get("base_url") or target.get("endpoint_id")
    label = f"{index}:{kind}:{where}"
    state = TargetState(
        label=label,
        kind=kind,
        base_url=str(target["base_url"]).rstrip("/") if kind == "url" else None,
        endpoint_id=uuid.UUID(target["endpoint_id"]) if kind == "endpoint" else None,
        model=target.get("model") or router.name,
        served_model=kind == "endpoint" and not target.get("model"),
        weight=float(target.get("weight", 1.0)),
        priority=int(target.get("priority", 0)),
        timeout=float(target.get("timeout_seconds", 60.0)),
        rpm=target.get("rpm"),
        tpm=target.get("tpm"),
    )
    credential_id = target.get("credential_id")
    if credential_id:
        values = secrets.get(uuid.UUID(credential_id))
        api_key = (values or {}).get("api_key")
        if api_key:
            state.authorization = f"Bearer {api_key}"
        else:
            state.broken = True
    previous = known.get(label)
    if previous is not None:
        state.latency, state.cooldown_until = previous.latency, previous.cooldown_until
    return state
