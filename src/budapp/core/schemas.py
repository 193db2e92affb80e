"""Base classes for request and response schemas."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(key) or has_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(has_nul(item) for item in value)
    return False


def reject_nul(model: str, data: Any) -> Any:
    """PostgreSQL text and JSON cannot hold U+0000: refuse it at the boundary (422) instead of
    failing in the database (500), wherever it hides in the input, naming the field."""
    if isinstance(data, dict):
        errors: list[InitErrorDetails] = [
            {
                "type": PydanticCustomError("nul_character", _NUL_MESSAGE),
                "loc": (str(key),),
                "input": value,
            }
            for key, value in data.items()
            if has_nul(value)
        ]
        if errors:
            raise ValidationError.from_exception_data(model, errors)
    return data


_NUL_MESSAGE = "text must not contain the NUL character (U+0000)"


class RequestSchema(BaseModel):
    # Unknown fields are an error: a typo in a field name must not be silently ignored.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul(cls.__name__, data)


class ResponseSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class RecordRead(ResponseSchema):
    id: uuid.UUID
    created_at: datetime
    updated_at: datetime


Name = Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]
Description = Annotated[str, StringConstraints(max_length=2000)]
