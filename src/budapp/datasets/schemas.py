from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import StringConstraints

from budapp.core.envelope import PageParams
from budapp.core.schemas import Description, Name, RecordRead, RequestSchema
from budapp.datasets.models import DatasetFormat

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]


class DatasetForm(RequestSchema):
    """The text fields of a dataset upload (multipart)."""

    name: Name | None = None
    description: Description | None = None
    # Default: from the file name's extension.
    format: DatasetFormat | None = None
    sha256: Sha256 | None = None


class DatasetVersionRead(RecordRead):
    version: int
    filename: str
    format: DatasetFormat
    size: int
    sha256: str
    row_count: int
    columns: list[dict[str, str]]


class DatasetRead(RecordRead):
    organization_id: uuid.UUID
    name: str
    description: str | None
    latest_version: int
    versions: list[DatasetVersionRead] = []
    # The first rows of the version shown (the latest unless `?version=` asks for another).
    preview: list[dict[str, Any]] | None = None
    preview_version: int | None = None


class DatasetUpdate(RequestSchema):
    name: Name | None = None
    description: Description | None = None


class DatasetFilter(PageParams):
    search: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    organization_id: uuid.UUID | None = None
