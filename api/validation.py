"""Input types shared by the routers' schemas."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import AfterValidator, BaseModel


def _storable(value: str) -> str:
    # Postgres text cannot hold NUL, and UTF-8 cannot encode lone surrogates;
    # refuse both here with a 422 instead of a database error.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


StorableStr = Annotated[str, AfterValidator(_storable)]

# Page size and position of list endpoints. The offset is bounded so that it
# always fits Postgres' bigint.
Limit = Annotated[int, Query(ge=1, le=100, description="Page size, 1-100")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Rows to skip")]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of a list endpoint and how many rows match in all."""

    items: list[T]
    total: int
    limit: int
    offset: int
