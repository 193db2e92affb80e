"""The principal cache: a budapp access token, once checked against its session and user, is
trusted for a few seconds without the database, so an authenticated request costs no signature
check and no query before the route's own.

Staleness is bounded twice:
- Any committed change to a user or to one of their sessions (logout, "log out everywhere",
  a role change, deactivation, deletion, a revoked refresh family) is announced on the event
  bus after the commit, and every replica drops that user's entries at once. The changes are
  found by ORM hooks, not by the services that make them, so a new code path cannot forget to
  announce: a flushed or bulk-updated `User` or `AuthSession` row is enough.
- An entry lives at most `ttl` seconds, and never past the token's own `exp` or the session's
  end, so a lost message (Redis down) or a change made by another process without a bus (the
  CLI) is caught within the TTL.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import defaultdict
from itertools import chain
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import async_session
from sqlalchemy.orm import ORMExecuteState, Session

from budapp.adapters.events import EventBus
from budapp.auth.models import AuthSession
from budapp.core.auth import Principal
from budapp.core.components import Key
from budapp.core.db import BudappSession, after_commit
from budapp.events.service import event_bus_of
from budapp.users.models import User

PRINCIPALS_CHANGED_TOPIC = "auth.principals_changed"
_MAX_ENTRIES = 100_000
# Users changed by the current unit of work, announced once it commits.
_CHANGED_KEY = "budapp.principals_changed"


class PrincipalCache:
    def __init__(self, bus: EventBus, *, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        # key -> (principal, deadline on the wall clock, as the token's `exp` is)
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._by_user: defaultdict[uuid.UUID, set[str]] = defaultdict(set)
        # Counts the changes heard, to tell whether one arrived while a token was checked.
        self._changes = 0
        bus.subscribe(PRINCIPALS_CHANGED_TOPIC, self._on_changed)

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    @staticmethod
    def key(token: str) -> str:
        # Only a digest of the token is kept, as for API keys.
        return hashlib.sha256(token.encode()).hexdigest()

    def get(self, key: str) -> Principal | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= time.time():
            self._drop(key)
            return None
        return entry[0]

    def mark(self) -> int:
        """Taken before a token is checked; `put` then refuses a result a change overtook."""
        return self._changes

    def put(self, key: str, principal: Principal, valid_until: float, mark: int) -> None:
        # A change heard while the rows were read may be of this very user, and it found
        # nothing to evict: the request is served, but its principal is not kept.
        if not self.enabled or mark != self._changes:
            return
        if len(self._entries) >= _MAX_ENTRIES:
            self._evict()
        self._entries[key] = (principal, min(valid_until, time.time() + self._ttl))
        self._by_user[principal.user_id].add(key)

    def forget_user(self, user_id: uuid.UUID) -> None:
        for key in self._by_user.pop(user_id, ()):
            self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._by_user.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            keys = self._by_user.get(entry[0].user_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_user[entry[0].user_id]

    def _evict(self) -> None:
        now = time.time()
        for key in [k for k, (_, deadline) in self._entries.items() if deadline <= now]:
            self._drop(key)
        while len(self._entries) >= _MAX_ENTRIES:
            self._drop(next(iter(self._entries)))

    def _on_changed(self, payload: dict[str, Any] | None) -> None:
        self._changes += 1
        if payload is None:
            # The bus lost messages (a Redis reconnect): trust nothing held.
            self.clear()
            return
        for raw in payload.get("user_ids") or []:
            try:
                self.forget_user(uuid.UUID(str(raw)))
            except ValueError:
                continue


def _note_changed(session: Session, users: set[uuid.UUID]) -> None:
    pending: set[uuid.UUID] | None = session.info.get(_CHANGED_KEY)
    if pending is None:
        bus = event_bus_of(session)
        proxy = async_session(session)
        if bus is None or proxy is None:
            # A session of no bound factory (a CLI command): nobody in this process listens;
            # other processes catch up within their TTL.
            return
        pending = session.info[_CHANGED_KEY] = set()

        async def announce() -> None:
            changed: set[uuid.UUID] = session.info.pop(_CHANGED_KEY, set())
            if changed:
                user_ids = sorted(str(user_id) for user_id in changed)
                await bus.publish(PRINCIPALS_CHANGED_TOPIC, {"user_ids": user_ids})

        after_commit(proxy, announce)
    pending.update(users)


@event.listens_for(BudappSession, "after_flush")
def _users_flushed(session: Session, _: object) -> None:
    users: set[uuid.UUID] = set()
    for obj in chain(session.dirty, session.deleted):
        if not isinstance(obj, (User, AuthSession)):
            continue
        if obj not in session.deleted and not session.is_modified(obj):
            continue
        users.add(obj.id if isinstance(obj, User) else obj.user_id)
    if users:
        _note_changed(session, users)


@event.listens_for(BudappSession, "do_orm_execute")
def _users_bulk_changed(state: ORMExecuteState) -> None:
    """`session.execute(update(AuthSession)...)` (how sessions are revoked) bypasses the flush:
    the users whose rows it is about to change are read first."""
    mapper = state.bind_mapper
    if not (state.is_update or state.is_delete) or mapper is None:
        return
    if mapper.class_ is User:
        query = select(User.id)
    elif mapper.class_ is AuthSession:
        query = select(AuthSession.user_id)
    else:
        return
    where = getattr(state.statement, "whereclause", None)
    if where is not None:
        query = query.where(where)
    users = set(state.session.scalars(query).all())
    if users:
        _note_changed(state.session, users)


PRINCIPAL_CACHE: Key[PrincipalCache] = Key("principal cache")
