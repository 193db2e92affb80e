"""Column helpers shared by domain tables."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import Enum, Index, text


def string_enum(enum: type[StrEnum]) -> Enum:
    """An enum stored as its string value in a VARCHAR (no native type: portable, and a new
    member needs no ALTER TYPE migration)."""
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda members: [member.value for member in members],
    )


def unique_live(name: str, *columns: Any) -> Index:
    """A unique index over rows that are not soft-deleted, so a deleted name can be reused."""
    live = text("deleted_at IS NULL")
    return Index(name, *columns, unique=True, sqlite_where=live, postgresql_where=live)
