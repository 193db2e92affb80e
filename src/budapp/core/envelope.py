"""The response envelope: `{"data": ..., "meta": {...}}`, and page-based pagination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from budapp.core.schemas import reject_nul

T = TypeVar("T")

MAX_PER_PAGE = 100


class Envelope(BaseModel, Generic[T]):
    data: T
    meta: dict[str, Any] = Field(default_factory=dict)


class PageMeta(BaseModel):
    total: int
    page: int
    per_page: int


class PageEnvelope(BaseModel, Generic[T]):
    data: list[T]
    meta: PageMeta


class PageParams(BaseModel):
    """Query parameters of a paged list. Routes take a subclass with their filters as
    `Annotated[XFilter, Query()]`; unknown parameters are refused, as in bodies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        # Query strings reach PostgreSQL as text too (search filters).
        return reject_nul(cls.__name__, data)

    page: int = Field(default=1, ge=1, le=1_000_000)
    per_page: int = Field(default=20, ge=1, le=MAX_PER_PAGE)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A page of items as a service returns it; routers wrap it in a PageEnvelope."""

    items: list[T]
    total: int
    params: PageParams

    def envelope(self) -> PageEnvelope[T]:
        meta = PageMeta(total=self.total, page=self.params.page, per_page=self.params.per_page)
        return PageEnvelope[T](data=self.items, meta=meta)
