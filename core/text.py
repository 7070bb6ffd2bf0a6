"""Text the database can store: the rule every free-text input shares."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def storable(value: str) -> str:
    """``value``, unless Postgres cannot store it: text cannot hold NUL, and
    UTF-8 cannot encode lone surrogates. Refusing both here gives a clear
    validation error instead of a database error."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


StorableStr = Annotated[str, AfterValidator(storable)]
