"""Imports every domain's tables so `Base.metadata` is complete (Alembic, tests)."""

from budapp.api_keys.models import ApiKey
from budapp.audit.models import AuditChainHead, AuditRecord
from budapp.auth.models import AuthSession, RefreshToken
from budapp.catalog.models import Model, ModelEvaluation, ModelFile, ModelTag, ScanJob
from budapp.core.db import Base
from budapp.credentials.models import Credential
from budapp.datasets.models import Dataset, DatasetVersion
from budapp.organizations.models import Organization
from budapp.projects.models import Project, ProjectMember
from budapp.users.models import User

metadata = Base.metadata

__all__ = [
    "ApiKey",
    "AuditChainHead",
    "AuditRecord",
    "AuthSession",
    "Credential",
    "Dataset",
    "DatasetVersion",
    "Model",
    "ModelEvaluation",
    "ModelFile",
    "ModelTag",
    "Organization",
    "Project",
    "ProjectMember",
    "RefreshToken",
    "ScanJob",
    "User",
    "metadata",
]
