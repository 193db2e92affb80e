from __future__ import annotations

from typing import Annotated

from fastapi import Depends, WebSocket

from budapp.core.auth import AUTHENTICATOR
from budapp.core.components import components
from budapp.events.hub import EVENT_HUB
from budapp.events.stream import EventStream, StreamSettings


async def _stream(websocket: WebSocket) -> EventStream:
    state = components(websocket)
    settings = state.settings
    return EventStream(
        websocket,
        state[EVENT_HUB],
        state[AUTHENTICATOR],
        state.session_factory,
        StreamSettings(settings.ws_heartbeat_seconds, settings.ws_send_timeout_seconds),
    )


EventStreamDep = Annotated[EventStream, Depends(_stream)]
