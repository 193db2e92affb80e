from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from budapp.events.dependencies import EventStreamDep

router = APIRouter(tags=["events"])


@router.websocket("/ws")
async def stream_events(
    stream: EventStreamDep,
    organization_id: Annotated[uuid.UUID | None, Query()] = None,
) -> None:
    """The caller's organization's events as JSON messages; super admins may name another
    organization. See docs/events.md for the protocol and close codes."""
    await stream.run(organization_id)
