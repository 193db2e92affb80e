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
    """One ordered page and the total count in a single round trip (a window count over the
    filtered rows); a second COUNT runs only when the page lies past the last row."""
    windowed = statement.add_columns(func.count().over().label("_total"))
    rows = (await session.execute(windowed.limit(params.per_page).offset(params.offset))).all()
    if rows:
        return [row[0] for row in rows], int(rows[0][-1])
    count = select(func.count()).select_from(statement.order_by(None).subquery())
    return [], int((await session.scalar(count)) or 0)


def escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(column: Any, term: str) -> Any:
    return column.ilike(f"%{escape_like(term)}%", escape="\\")
