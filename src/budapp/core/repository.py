"""Query helpers shared by repositories."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.envelope import PageParams

T = TypeVar("T")


async def fetch_page(
    session: AsyncSession, statement: Select[T], params: PageParams
) -> tuple[list[T], int]:
    """One ordered page and the total. Two queries rather than a `count(*) over ()` window:
    the window makes the database read every matching row for every page, while a COUNT
    and a LIMIT can each be answered from an index."""
    count = select(func.count()).select_from(statement.order_by(None).subquery())
    total = int((await session.scalar(count)) or 0)
    if total <= params.offset:
        return [], total
    page = statement.limit(params.per_page).offset(params.offset)
    return list((await session.scalars(page)).all()), total


def escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(column: Any, term: str) -> Any:
    return column.ilike(f"%{escape_like(term)}%", escape="\\")


async def name_taken(
    session: AsyncSession,
    model: Any,
    name: str,
    *,
    excluding: Any = None,
    **scope: Any,
) -> bool:
    """Whether a live (not soft-deleted) row of `model` already has `name` within `scope`
    (column=value pairs, e.g. organization_id=...), leaving out the row `excluding`."""
    statement = select(model.id).where(model.deleted_at.is_(None), model.name == name)
    for column, value in scope.items():
        statement = statement.where(getattr(model, column) == value)
    if excluding is not None:
        statement = statement.where(model.id != excluding)
    return (await session.scalar(statement.limit(1))) is not None
