"""Imports every domain's tables so `Base.metadata` is complete (Alembic, tests)."""

from budapp.api_keys.models import ApiKey
from budapp.audit.models import AuditChainHead, AuditRecord
from budapp.auth.models import AuthSession, OidcLogin, RefreshToken, UserIdentity
from budapp.benchmarks.models import BenchmarkRequest, BenchmarkRun
from budapp.catalog.models import Model, ModelEvaluation, ModelFile, ModelTag, ScanJob
from budapp.clusters.models import Cluster
from budapp.core.db import Base
from budapp.credentials.models import Credential
from budapp.datasets.models import Dataset, DatasetVersion
from budapp.endpoints.models import Endpoint, EndpointReplica
from budapp.notifications.models import Notification
from budapp.organizations.models import Organization
from budapp.projects.models import Project, ProjectMember
from budapp.routers.models import ProjectRateLimit, Router
from budapp.usage.models import UsageDaily, UsageHourly, UsageRecord
from budapp.users.models import User
from budapp.webhooks.models import Webhook, WebhookDelivery
from budapp.workflows.models import WorkflowRun, WorkflowStep

metadata = Base.metadata

__all__ = [
    "ApiKey",
    "AuditChainHead",
    "AuditRecord",
    "AuthSession",
    "BenchmarkRequest",
    "BenchmarkRun",
    "Cluster",
    "Credential",
    "Dataset",
    "DatasetVersion",
    "Endpoint",
    "EndpointReplica",
    "Model",
    "ModelEvaluation",
    "ModelFile",
    "ModelTag",
    "Notification",
    "OidcLogin",
    "Organization",
    "Project",
    "ProjectMember",
    "ProjectRateLimit",
    "RefreshToken",
    "Router",
    "ScanJob",
    "UsageDaily",
    "UsageHourly",
    "UsageRecord",
    "User",
    "UserIdentity",
    "Webhook",
    "WebhookDelivery",
    "WorkflowRun",
    "WorkflowStep",
    "metadata",
]
