"""Platform roles, project roles and project-level permissions."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """Organisation-wide role; each includes the powers of the ones below it."""

    SUPER_ADMIN = "super_admin"
    ORG_ADMIN = "org_admin"
    PROJECT_ADMIN = "project_admin"
    USER = "user"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANK = {Role.USER: 0, Role.PROJECT_ADMIN: 1, Role.ORG_ADMIN: 2, Role.SUPER_ADMIN: 3}


class ProjectRole(StrEnum):
    ADMIN = "admin"
    DEVELOPER = "developer"
    VIEWER = "viewer"


class Permission(StrEnum):
    """What a project member may do, per resource kind: `<kind>:view` or `<kind>:manage`."""

    PROJECT_VIEW = "project:view"
    PROJECT_MANAGE = "project:manage"
    MEMBERS_VIEW = "members:view"
    MEMBERS_MANAGE = "members:manage"
    ENDPOINT_VIEW = "endpoint:view"
    ENDPOINT_MANAGE = "endpoint:manage"
    MODEL_VIEW = "model:view"
    MODEL_MANAGE = "model:manage"
    API_KEY_VIEW = "api_key:view"
    API_KEY_MANAGE = "api_key:manage"
    ROUTER_VIEW = "router:view"
    ROUTER_MANAGE = "router:manage"
    CREDENTIAL_VIEW = "credential:view"
    CREDENTIAL_MANAGE = "credential:manage"
    DATASET_VIEW = "dataset:view"
    DATASET_MANAGE = "dataset:manage"
    BENCHMARK_VIEW = "benchmark:view"
    BENCHMARK_MANAGE = "benchmark:manage"


_VIEW_ALL = frozenset(p for p in Permission if p.value.endswith(":view"))

ROLE_PERMISSIONS: dict[ProjectRole, frozenset[Permission]] = {
    ProjectRole.ADMIN: frozenset(Permission),
    ProjectRole.DEVELOPER: _VIEW_ALL
    | {
        Permission.ENDPOINT_MANAGE,
        Permission.MODEL_MANAGE,
        Permission.DATASET_MANAGE,
        Permission.API_KEY_MANAGE,
        Permission.ROUTER_MANAGE,
        Permission.BENCHMARK_MANAGE,
    },
    ProjectRole.VIEWER: _VIEW_ALL,
}
