from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from budapp.core.components import PASSWORD_HASHER, components
from budapp.core.deps import SessionDep
from budapp.organizations.dependencies import OrganizationServiceDep
from budapp.users.service import UserService


async def _service(
    request: Request, session: SessionDep, organizations: OrganizationServiceDep
) -> UserService:
    state = components(request)
    return UserService(
        session,
        state[PASSWORD_HASHER],
        organizations,
        password_min_length=state.settings.password_min_length,
    )


UserServiceDep = Annotated[UserService, Depends(_service)]
