"""Each replica's in-memory copy of a project's routing table (routers, their targets and
the project's limits), loaded on first use and dropped when the project's routers or limits
change, or a credential or model of its organization does (events on the bus), or after a
TTL, so the hot path reads no database."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.adapters.events import EventBus
from budapp.catalog.models import Model, ModelSource
from budapp.catalog.service import MODELS_CHANGED_TOPIC, models_of_organization
from budapp.core.components import Key
from budapp.core.logging import get_logger
from budapp.credentials.service import (
    CREDENTIALS_CHANGED_TOPIC,
    CredentialVault,
    secrets_for_project,
)
from budapp.gateway.providers import BASE_HEADERS, Provider, upstream
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
    # Sent as they are (the provider's key included); computed once per load.
    headers: dict[str, str] = field(default_factory=lambda: dict(BASE_HEADERS))
    # Set for providers whose requests and answers are translated (Anthropic, Azure).
    provider: Provider | None = None
    # A target whose credential cannot be read, or whose registry model is gone, is
    # unavailable (never sent unauthenticated).
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
    organization_id: uuid.UUID | None = None
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
        bus.subscribe(CREDENTIALS_CHANGED_TOPIC, self._on_organization_changed)
        bus.subscribe(MODELS_CHANGED_TOPIC, self._on_organization_changed)

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
        """The project's routing is read again on its next call. The entry stays, expired, so
        what this process learnt of its targets (cooldowns, latencies) carries over: a limit
        change must not send calls back to a target that is cooling down."""
        entry = self._entries.get(project_id)
        if entry is not None:
            entry.expires = 0.0

    def _forget_all(self) -> None:
        for entry in self._entries.values():
            entry.expires = 0.0

    async def _load(
        self, project_id: uuid.UUID, organization_id: uuid.UUID, previous: ProjectConfig | None
    ) -> ProjectConfig:
        async with self._factory() as session:
            routers, limits = await routing_table(session, project_id)
            targets = [target for router in routers for target in router.targets]
            model_ids = {uuid.UUID(t["model_id"]) for t in targets if t["kind"] == "model"}
            models: dict[uuid.UUID, Model] = {}
            if model_ids:
                found = await models_of_organization(session, organization_id, list(model_ids))
                models = {m.id: m for m in found if m.source is ModelSource.CLOUD}
            credential_ids = {
                uuid.UUID(t["credential_id"]) for t in targets if t.get("credential_id")
            }
            credential_ids |= {m.credential_id for m in models.values() if m.credential_id}
            secrets: dict[uuid.UUID, dict[str, Any] | None] = {}
            for credential_id in credential_ids:
                secrets[credential_id] = await secrets_for_project(
                    session, self._vault, organization_id, project_id, credential_id
                )
        resolved = _Resolved(secrets, models)
        config = ProjectConfig(
            routers={r.name: _router_config(r, resolved, previous) for r in routers},
            organization_id=organization_id,
            expires=time.monotonic() + self._ttl,
        )
        if limits is not None:
            config.rpm, config.tpm = limits.rpm, limits.tpm
            config.key_rpm, config.key_tpm = limits.key_rpm, limits.key_tpm
        return config

    def _on_organization_changed(self, payload: dict[str, Any] | None) -> None:
        """A credential or a model changed: every project of its organization reloads (they
        are rare, and which targets use them is only known once loaded)."""
        self._changes += 1
        if payload is None:
            self._forget_all()
            return
        organization_id = str(payload.get("organization_id"))
        for project_id, entry in list(self._entries.items()):
            if str(entry.organization_id) == organization_id:
                self.forget(project_id)

    def _on_changed(self, payload: dict[str, Any] | None) -> None:
        self._changes += 1
        if payload is None:
            self._forget_all()
            return
        with contextlib.suppress(ValueError, KeyError, TypeError):
            self.forget(uuid.UUID(str(payload["project_id"])))


@dataclass(slots=True)
class _Resolved:
    """What a load read besides the routers: credentials' values (None: not usable by the
    project) and the live cloud models of the organization that targets name."""

    secrets: dict[uuid.UUID, dict[str, Any] | None]
    models: dict[uuid.UUID, Model]


def _router_config(
    router: Router, resolved: _Resolved, previous: ProjectConfig | None
) -> RouterConfig:
    # What this replica learnt of the targets (cooldowns, latencies) survives a reload.
    known: dict[str, TargetState] = {}
    if previous is not None and router.name in previous.routers:
        for group in previous.routers[router.name].groups:
            known.update({t.label: t for t in group})
    states = [_target_state(router, i, t, resolved, known) for i, t in enumerate(router.targets)]
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
    resolved: _Resolved,
    known: dict[str, TargetState],
) -> TargetState:
    kind = target["kind"]
    where = target.get("base_url") or target.get("endpoint_id") or target.get("model_id")
    label = f"{index}:{kind}:{where}"
    state = TargetState(
        label=label,
        kind=kind,
        base_url=None,
        endpoint_id=uuid.UUID(target["endpoint_id"]) if kind == "endpoint" else None,
        model=target.get("model") or router.name,
        served_model=kind == "endpoint" and not target.get("model"),
        weight=float(target.get("weight", 1.0)),
        priority=int(target.get("priority", 0)),
        timeout=float(target.get("timeout_seconds", 60.0)),
        rpm=target.get("rpm"),
        tpm=target.get("tpm"),
    )
    if kind == "url":
        credential_id = target.get("credential_id")
        values = resolved.secrets.get(uuid.UUID(credential_id)) if credential_id else None
        if credential_id and values is None:
            state.broken = True
        else:
            _call_through(state, values, str(target["base_url"]))
    elif kind == "model":
        # A registry model deleted since (or no longer a cloud model) leaves the target broken.
        model = resolved.models.get(uuid.UUID(target["model_id"]))
        values = None
        if model is not None and model.credential_id is not None:
            values = resolved.secrets.get(model.credential_id)
        if model is None or values is None or not model.provider_model_id:
            state.broken = True
        else:
            state.model = model.provider_model_id
            _call_through(state, values, None)
    previous = known.get(label)
    if previous is not None:
        state.latency, state.cooldown_until = previous.latency, previous.cooldown_until
    return state


def _call_through(state: TargetState, values: dict[str, Any] | None, base_url: str | None) -> None:
    found = upstream(values, base_url)
    if found is None:
        state.broken = True
        return
    state.base_url, state.headers, state.provider = found.base_url, found.headers, found.provider


ROUTING_CACHE: Key[RoutingCache] = Key("routing cache")
