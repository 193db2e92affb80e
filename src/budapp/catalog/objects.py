"""The stored files of models, as the storage sweeper sees them (`catalog.sweeper`)."""

from __future__ import annotations

from budapp.catalog.models import Model, ModelFile
from budapp.core.owned_files_repository import OwnedFilesRepository

# Keys are `models/<organization>/<model>/<file id>`.
MODEL_OBJECT_PREFIX = "models"

MODEL_FILES = OwnedFilesRepository(
    MODEL_OBJECT_PREFIX, owner=Model, files=ModelFile, owner_id=ModelFile.model_id
)
