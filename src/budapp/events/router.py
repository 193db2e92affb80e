from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket

from budapp.events.stream import EventStream, StreamSettings

router = APIRouter(tags=["events"])


@router.websocket("/ws")
async def stream_events(
    websocket: WebSocket,
    organization_id: Annotated[uuid.UUID | None, Query()] = None,
) -> None:
    """The caller's organization's events as JSON messages; super admins may name another
    organization. See README "Real-time events" for the protocol and close codes."""
    state = websocket.app.state
    settings = state.settings
    stream = EventStream(
        websocket,
        state.event_hub,
        state.authenticator,
        StreamSettings(settings.ws_heartbeat_seconds, settings.ws_send_timeout_seconds),
    )
    await stream.run(organization_id)
