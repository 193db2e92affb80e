from __future__ import annotations

from budapp.core.errors import Conflict


class ModelNotDeployable(Conflict):
    """The model's files failed the safety scan (and no org admin overrode it), or the scan
    has not finished."""
