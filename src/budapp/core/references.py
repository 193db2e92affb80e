"""Deletion guards across domains.

A domain whose rows point at another domain's resource registers a check here (at start-up, in
`main.py`), and the owning service asks before deleting. The owner thus refuses to delete a
referenced resource without importing the domains that reference it."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.errors import Conflict

# Returns a short description of what still refers to the resource ("3 users"), or None.
ReferenceCheck = Callable[[AsyncSession, uuid.UUID], Awaitable[str | None]]


class ReferenceGuard:
    def __init__(self) -> None:
        self._checks: dict[str, list[ReferenceCheck]] = defaultdict(list)

    def register(self, resource: str, check: ReferenceCheck) -> None:
        self._checks[resource].append(check)

    async def ensure_unreferenced(
        self, resource: str, session: AsyncSession, resource_id: uuid.UUID
    ) -> None:
        found = [
            reference
            for check in self._checks.get(resource, [])
            if (reference := await check(session, resource_id)) is not None
        ]
        if found:
            raise Conflict(
                f"The {resource} is still in use by: {', '.join(found)}",
                details=[{"reference": reference} for reference in found],
            )
