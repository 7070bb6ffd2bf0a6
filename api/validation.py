"""Input types shared by the routers' schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


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
