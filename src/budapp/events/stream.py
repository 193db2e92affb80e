"""One WebSocket client of /ws: authenticate, pick the organisation, then stream its events
with heartbeats until the client leaves, its session ends, or it falls behind.

Tokens come from the `Authorization: Bearer` header, or (browsers cannot set headers on a
WebSocket) from a subprotocol `bearer.<access token>` offered next to `budapp`. Never from the
query string, which proxies and access logs record. The access token is checked again at every
heartbeat, so a logout, a deactivated user or an expired token ends the stream within one
heartbeat; a client extends it by sending `{"type": "auth", "token": "<new access token>"}`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from budapp.core.auth import Authenticator, Principal
from budapp.core.db import utcnow
from budapp.core.errors import NotFound, Unauthorized
from budapp.core.logging import get_logger
from budapp.core.references import ReferenceGuard
from budapp.events.hub import Connection, EventHub
from budapp.organizations.service import OrganizationService

SUBPROTOCOL = "budapp"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."  # noqa: S105 - a prefix, not a secret

# Close codes (4000-4999 are the application's own).
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_SLOW = 4408
CLOSE_POLICY = 1008

log = get_logger("budapp.events")


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class StreamSettings:
    heartbeat_seconds: float
    send_timeout_seconds: float


def bearer_token(websocket: WebSocket) -> str | None:
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for offered in websocket.scope.get("subprotocols", []):
        if offered.startswith(TOKEN_SUBPROTOCOL_PREFIX) and len(offered) > 7:
            return str(offered[len(TOKEN_SUBPROTOCOL_PREFIX) :])
    return None


class EventStream:
    def __init__(
        self,
        websocket: WebSocket,
        hub: EventHub,
        authenticator: Authenticator,
        factory: async_sessionmaker[AsyncSession],
        settings: StreamSettings,
    ) -> None:
        self.websocket = websocket
        self.hub = hub
        self.factory = factory
        self.authenticator = authenticator
        self.settings = settings
        self.token: str | None = None
        self.principal: Principal | None = None

    async def run(self, requested_organization: uuid.UUID | None) -> None:
        offered = self.websocket.scope.get("subprotocols", [])
        await self.websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        self.token = bearer_token(self.websocket)
        if self.token is None:
            await self._close(Close(CLOSE_UNAUTHORIZED, "an access token is required"))
            return
        outcome = await self._authorize(requested_organization)
        if isinstance(outcome, Close):
            await self._close(outcome)
            return
        principal = self.principal
        assert principal is not None  # noqa: S101 - set by _authorize
        connection = self.hub.connect(outcome, principal.user_id)
        try:
            ready = {"type": "ready", "organization_id": str(outcome)}
            await self.websocket.send_json({**ready, "user_id": str(principal.user_id)})
            close = await self._serve(connection)
        except WebSocketDisconnect:
            close = None
        finally:
            self.hub.disconnect(connection)
        if close is not None:
            await self._close(close)

    async def _serve(self, connection: Connection) -> Close | None:
        receiver = asyncio.create_task(self._receive(connection))
        sender = asyncio.create_task(self._send(connection))
        done, pending = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await task
        result: Close | None = done.pop().result()
        return result

    async def _send(self, connection: Connection) -> Close | None:
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + self.settings.heartbeat_seconds
        while True:
            try:
                message = await asyncio.wait_for(
                    connection.queue.get(), timeout=max(next_beat - loop.time(), 0)
                )
            except TimeoutError:
                if (close := await self._recheck(connection)) is not None:
                    return close
                message = {"type": "ping", "at": utcnow().isoformat()}
                next_beat = loop.time() + self.settings.heartbeat_seconds
            if connection.overflowed.is_set():
                return Close(CLOSE_TOO_SLOW, "the client is not reading fast enough")
            try:
                await asyncio.wait_for(
                    self.websocket.send_text(json.dumps(message)),
                    timeout=self.settings.send_timeout_seconds,
                )
            except TimeoutError:
                return Close(CLOSE_TOO_SLOW, "the client is not reading fast enough")

    async def _receive(self, connection: Connection) -> Close | None:
        while True:
            try:
                text = await self.websocket.receive_text()
            except WebSocketDisconnect:
                return None
            try:
                message: Any = json.loads(text)
            except ValueError:
                return Close(CLOSE_POLICY, "messages must be JSON")
            if isinstance(message, dict) and message.get("type") == "auth":
                token = message.get("token")
                if not isinstance(token, str) or not token:
                    return Close(CLOSE_POLICY, "an auth message needs a token")
                self.token = token
                if (close := await self._recheck(connection)) is not None:
                    return close
            # Anything else (a pong) only shows that the client is alive.

    async def _recheck(self, connection: Connection) -> Close | None:
        """The token still opens a live session of the same user, with access to the org."""
        previous = self.principal
        outcome = await self._authorize(connection.organization_id)
        if isinstance(outcome, Close):
            return outcome
        current = self.principal
        if previous is not None and current is not None and current.user_id != previous.user_id:
            return Close(CLOSE_FORBIDDEN, "the token belongs to another user")
        return None

    async def _authorize(self, requested: uuid.UUID | None) -> uuid.UUID | Close:
        assert self.token is not None  # noqa: S101 - checked by the caller
        async with self.factory() as session:
            try:
                principal = await self.authenticator.authenticate(self.token, session)
            except Unauthorized as exc:
                return Close(CLOSE_UNAUTHORIZED, exc.message)
            self.principal = principal
            if requested is None or requested == principal.organization_id:
                return principal.organization_id
            organizations = OrganizationService(session, ReferenceGuard())
            try:
                # Others' organizations are out of every scope but a super admin's.
                await organizations.get(principal.scope, requested)
            except NotFound:
                return Close(CLOSE_NOT_FOUND, f"organization {requested} not found")
            return requested

    async def _close(self, close: Close) -> None:
        if self.websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.websocket.close(code=close.code, reason=close.reason[:120]),
                    timeout=self.settings.send_timeout_seconds,
                )
        log.info("websocket_closed", code=close.code, reason=close.reason)
