from __future__ import annotations

from budapp.core.schemas import Description, Name, RecordRead, RequestSchema


class OrganizationCreate(RequestSchema):
    name: Name
    description: Description | None = None


class OrganizationUpdate(RequestSchema):
    name: Name | None = None
    description: Description | None = None


class OrganizationRead(RecordRead):
    name: str
    description: str | None
