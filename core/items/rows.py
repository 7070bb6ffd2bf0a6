"""An item CSV's rows checked with the item rules of :mod:`core.items.fields`
(the ones the API's schemas use), and what the import's report says of a
refused cell."""

from __future__ import annotations

from decimal import Decimal

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from core.items.fields import (
    QUANTITY_MAX,
    SKU_RULE,
    Description,
    Name,
    Price,
    Quantity,
    Sku,
)

# The columns of an item CSV, in the order exports write them.
CSV_COLUMNS = ("sku", "name", "description", "price", "quantity")
# An item's fields in CSV_COLUMNS order: as text (no description: None), and
# once valid.
Cells = tuple[str, str, str | None, str, str]
Record = tuple[str, str, str | None, Decimal, int]
# Validates many rows in one call: far faster than a call per row.
_ROWS: TypeAdapter[list[Record]] = TypeAdapter(
    list[tuple[Sku, Name, Description | None, Price, Quantity]]
)


def validate_rows(rows: list[Cells]) -> tuple[list[Record], dict[int, tuple[str, str]]]:
    """The valid rows' records, in order, and the refused rows by index, with
    the first column at fault and why. A list with refused rows is validated
    twice."""
    try:
        return _ROWS.validate_python(rows), {}
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    refused: dict[int, tuple[str, str]] = {}
    for error in errors:  # in row order, and in column order within a row
        index, position = int(error["loc"][0]), int(error["loc"][1])
        if index not in refused:
            refused[index] = (CSV_COLUMNS[position], _reason(error))
    valid = [row for index, row in enumerate(rows) if index not in refused]
    return _ROWS.validate_python(valid), refused


def _reason(error: ErrorDetails) -> str:
    """What an import's report says of a refused cell."""
    context, value = error.get("ctx", {}), error["input"]
    match error["type"]:
        case "string_too_short":
            return "is required"  # every minimum length is 1
        case "string_too_long":
            return f"is longer than {context['max_length']} characters"
        case "string_pattern_mismatch":
            return SKU_RULE
        case "value_error":
            return str(context["error"])
        case "greater_than_equal":
            return f"must be at least {context['ge']}"
        case "less_than_equal":
            return f"must be at most {context['le']}"
        case "decimal_max_places":
            return f"has more than {context['decimal_places']} decimal places"
        case "finite_number":
            return "must be a finite number"
        case "decimal_parsing":
            return f"{value[:40]!r} is not a number"
        case "int_parsing":
            return f"{value[:40]!r} is not a whole number"
        case "int_parsing_size":  # more digits than int() reads: far out of range
            negative = value.strip().startswith("-")
            return "must be at least 0" if negative else f"must be at most {QUANTITY_MAX}"
    return error["msg"]
