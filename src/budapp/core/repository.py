"""What every repository shares: the base class, pagination, declarative filters and the
name-taken check.

A repository names how each field of its filter schema narrows a query once, as data, and
`narrowed()` applies the fields a request set:

    _FILTERS = (equal("status", Endpoint.status), search("name", Endpoint.name))
    statement = narrowed(self._scoped(scope), filters, _FILTERS)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.envelope import PageParams

T = TypeVar("T")


class Repository:
    """The queries of one aggregate, run on the caller's session. A repository flushes at
    most; the request's unit of work (or a workflow step) commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: object) -> None:
        self.session.add(row)


@dataclass(frozen=True, slots=True)
class Criterion:
    """How one field of a filter schema narrows a query, when the request set it."""

    field: str
    condition: Callable[[Any], ColumnElement[bool]]


def equal(field: str, column: Any) -> Criterion:
    return Criterion(field, lambda value: column == value)


def at_least(field: str, column: Any) -> Criterion:
    return Criterion(field, lambda value: column >= value)


def at_most(field: str, column: Any) -> Criterion:
    return Criterion(field, lambda value: column <= value)


def search(field: str, *columns: Any) -> Criterion:
    """A case-insensitive substring of any of `columns` (LIKE wildcards in the term escaped)."""
    return Criterion(field, lambda term: or_(*(contains(column, term) for column in columns)))


def narrowed(statement: Select[T], filters: object, criteria: Iterable[Criterion]) -> Select[T]:
    """`statement` with the condition of every criterion whose field is set (not None, and
    not an empty string) on `filters`."""
    for criterion in criteria:
        value = getattr(filters, criterion.field)
        if value is not None and value != "":
            statement = statement.where(criterion.condition(value))
    return statement


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
