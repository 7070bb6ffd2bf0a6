"""What the routes share: page size and position, the page envelope, and a
model written as the response once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Generic, Self, TypeVar

from fastapi import Query
from pydantic import BaseModel
from starlette.responses import Response

# Page size and position of list endpoints. The offset is bounded so that it
# always fits Postgres' bigint.
Limit = Annotated[int, Query(ge=1, le=100, description="Page size, 1-100")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Rows to skip")]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of a list endpoint and how many rows match in all.

    A list route declares its page as a subclass (``class ItemPage(Page[ItemRead])``),
    which names it in the OpenAPI schema, and builds it with :meth:`of`."""

    items: list[T]
    total: int
    limit: int
    offset: int

    @classmethod
    def of(cls, rows: Iterable[object], total: int, *, limit: int, offset: int) -> Self:
        """The page of ``rows`` (ORM objects, read through their attributes
        into the page's item schema) out of ``total``."""
        return cls.model_validate(
            {"items": list(rows), "total": total, "limit": limit, "offset": offset},
            from_attributes=True,
        )


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """``model`` as the JSON response FastAPI writes for a route returning it
    (same bytes, same headers), serialised once: returned as a Response,
    FastAPI neither validates it again nor serialises it a second time."""
    body = model.__pydantic_serializer__.to_json(model)
    return Response(body, status_code=status_code, media_type="application/json")
