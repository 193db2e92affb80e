"""The permissions each project role is expected to grant, written out by hand (not read
from budapp.core.roles), so that a change to the roles shows up as a failing test."""

ALL_PERMISSIONS = [
    "api_key:manage",
    "api_key:view",
    "credential:manage",
    "credential:view",
    "dataset:manage",
    "dataset:view",
    "endpoint:manage",
    "endpoint:view",
    "members:manage",
    "members:view",
    "model:manage",
    "model:view",
    "project:manage",
    "project:view",
    "router:manage",
    "router:view",
]
DEVELOPER_PERMISSIONS = [
    "api_key:manage",
    "api_key:view",
    "credential:view",
    "dataset:manage",
    "dataset:view",
    "endpoint:manage",
    "endpoint:view",
    "members:view",
    "model:manage",
    "model:view",
    "project:view",
    "router:manage",
    "router:view",
]
VIEWER_PERMISSIONS = [
    "api_key:view",
    "credential:view",
    "dataset:view",
    "endpoint:view",
    "members:view",
    "model:view",
    "project:view",
    "router:view",
]
