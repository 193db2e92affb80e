"""Base classes for request and response schemas."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar

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


def reject_nulls(model: str, data: Any, fields: frozenset[str]) -> Any:
    """An update may leave these fields out, but an explicit null would mean nothing (they
    cannot be emptied): refuse it (422) rather than ignore it silently."""
    if isinstance(data, dict):
        errors: list[InitErrorDetails] = [
            {
                "type": PydanticCustomError("not_null", "cannot be null; leave the field out"),
                "loc": (key,),
                "input": None,
            }
            for key in sorted(fields)
            if key in data and data[key] is None
        ]
        if errors:
            raise ValidationError.from_exception_data(model, errors)
    return data


class RequestSchema(BaseModel):
    # Unknown fields are an error: a typo in a field name must not be silently ignored.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    # Optional fields of an update that may be left out but not set to null.
    not_null: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if cls.not_null:
            data = reject_nulls(cls.__name__, data, cls.not_null)
        return reject_nul(cls.__name__, data)


class ResponseSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class RecordRead(ResponseSchema):
    id: uuid.UUID
    created_at: datetime
    updated_at: datetime


Name = Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]
Description = Annotated[str, StringConstraints(max_length=2000)]
