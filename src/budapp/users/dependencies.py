from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from budapp.core.auth import CurrentPrincipal, OrgAdmin
from budapp.core.components import PASSWORD_HASHER, components
from budapp.core.deps import SessionDep
from budapp.organizations.dependencies import OrganizationServiceDep
from budapp.users.service import UserAccess, UserIntent, UserService


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


def user_access(intent: UserIntent) -> Callable[..., Awaitable[UserAccess]]:
    async def dependency(
        user_id: uuid.UUID, principal: CurrentPrincipal, service: UserServiceDep
    ) -> UserAccess:
        return await service.access(user_id, principal, intent)

    return dependency


async def _managed_user(
    user_id: uuid.UUID, principal: OrgAdmin, service: UserServiceDep
) -> UserAccess:
    return await service.access(user_id, principal, "manage")


# Themselves, or anyone in scope for project admins and above.
UserReader = Annotated[UserAccess, Depends(user_access("view"))]
# Themselves (name, e-mail, password), or anyone an org admin may manage.
UserEditor = Annotated[UserAccess, Depends(user_access("edit"))]
# Org admins, on users whose role theirs includes (roles, deletion).
UserManager = Annotated[UserAccess, Depends(_managed_user)]
