"""Dependencies every router shares: the settings and the request's unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.components import components
from budapp.core.db import session_scope
from budapp.core.logging import current_request_id
from budapp.core.origin import Origin, client_address, set_origin
from budapp.settings import Settings


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with session_scope(components(request).session_factory) as session:
        set_origin(session.sync_session, request_origin(request))
        yield session


def request_origin(request: Request) -> Origin:
    trusted = components(request).trusted_networks
    peer = request.client.host if request.client else None
    return Origin(
        ip_address=client_address(peer, request.headers.get("x-forwarded-for"), trusted),
        user_agent=(request.headers.get("user-agent") or "")[:512] or None,
        request_id=current_request_id(),
    )


async def _settings(request: Request) -> Settings:
    # async: a plain `def` dependency would cost a thread-pool hop on every request.
    return components(request).settings


# scope="function": commit before the response is sent, so a failed commit is an error
# response rather than a success the database never saw.
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(_settings)]
