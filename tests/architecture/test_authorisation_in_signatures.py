"""Who may call a route is said by its handler's signature: the resource a path names is
resolved, in the caller's tenant scope and with their permission checked, by a named
dependency (`EndpointManager`, `ModelReader`, `RoutersViewer`...), never handed to the handler
as a bare id for the service to check out of sight. A second id in the path (a router of the
project, a file of the model) is looked up inside the first, which the dependency checked."""

from __future__ import annotations

import inspect
import re

from fastapi.routing import APIRoute, APIWebSocketRoute

from budapp.main import DOMAIN_ROUTERS

# Paths whose first id is not a tenant resource: nothing to resolve.
NOT_RESOURCES = {
    "/internal/users/{user_id}/permissions",  # service-to-service, with the service token
}


def _routes() -> list[APIRoute | APIWebSocketRoute]:
    routes = [route for router in DOMAIN_ROUTERS for route in router.routes]
    found = [route for route in routes if isinstance(route, APIRoute | APIWebSocketRoute)]
    assert len(found) > 100  # the walk sees the routes (a framework change could hide them)
    return found


def test_the_first_id_of_every_path_is_resolved_by_a_named_dependency() -> None:
    bare = []
    for route in _routes():
        ids = re.findall(r"\{(\w+_id)\}", route.path)
        if not ids or route.path in NOT_RESOURCES:
            continue
        parameters = inspect.signature(route.endpoint).parameters
        if ids[0] in parameters:
            bare.append(f"{sorted(route.methods or [])} {route.path}: {ids[0]}")
    assert bare == [], "handlers taking a bare resource id:\n" + "\n".join(bare)
