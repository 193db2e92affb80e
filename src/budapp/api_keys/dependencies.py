from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from budapp.api_keys.resolver import API_KEY_RESOLVER, ApiKeyIdentity
from budapp.api_keys.service import ApiKeyService
from budapp.core.components import components
from budapp.core.deps import SessionDep
from budapp.core.errors import Unauthorized
from budapp.core.roles import Permission
from budapp.projects.dependencies import project_access
from budapp.projects.service import ProjectAccess


async def _service(request: Request, session: SessionDep) -> ApiKeyService:
    return ApiKeyService(session, components(request).event_bus)


_bearer = HTTPBearer(auto_error=False, description="An API key: bud_sk_...")
_header = APIKeyHeader(name="X-API-Key", auto_error=False)


async def current_api_key(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> ApiKeyIdentity:
    """The calling API key, from `Authorization: Bearer` or `X-API-Key`."""
    raw = bearer.credentials if bearer is not None else header
    if not raw:
        raise Unauthorized("An API key is required")
    return await components(request)[API_KEY_RESOLVER].resolve(raw)


ApiKeyServiceDep = Annotated[ApiKeyService, Depends(_service)]
CurrentApiKey = Annotated[ApiKeyIdentity, Depends(current_api_key)]
KeysViewer = Annotated[ProjectAccess, Depends(project_access(Permission.API_KEY_VIEW))]
KeysManager = Annotated[ProjectAccess, Depends(project_access(Permission.API_KEY_MANAGE))]
