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
