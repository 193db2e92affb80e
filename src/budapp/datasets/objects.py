"""The stored files of dataset versions, as the storage sweeper sees them
(`catalog.sweeper`)."""

from __future__ import annotations

from budapp.core.owned_files_repository import OwnedFilesRepository
from budapp.datasets.models import Dataset, DatasetVersion

# Keys are `datasets/<organization>/<dataset>/<version id>`.
DATASET_OBJECT_PREFIX = "datasets"

DATASET_FILES = OwnedFilesRepository(
    DATASET_OBJECT_PREFIX, owner=Dataset, files=DatasetVersion, owner_id=DatasetVersion.dataset_id
)
