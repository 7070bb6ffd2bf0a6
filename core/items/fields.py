"""What a valid item field is: one definition for the API's schemas and the
CSV import's rows, so that a row the import accepts is one the API accepts
(tests/unit/test_item_fields.py checks that they agree)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field

from core.text import storable

SKU_MAX_LENGTH = 64
SKU_PATTERN = r"^[A-Za-z0-9._-]+$"
# What a sku that does not match SKU_PATTERN is told.
SKU_RULE = "may only contain letters, digits, '.', '_' and '-'"
NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 10_000
# Numeric(12, 2) in the database.
PRICE_MAX = Decimal("9999999999.99")
PRICE_DECIMAL_PLACES = 2
# Postgres integer.
QUANTITY_MAX = 2_147_483_647

Sku = Annotated[str, Field(min_length=1, max_length=SKU_MAX_LENGTH, pattern=SKU_PATTERN)]
# Lengths before the storable check: pydantic-core then checks them itself, in
# one step with the type (after a Python validator, they would be Python
# calls too, and an import validates millions of fields).
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX_LENGTH), AfterValidator(storable)]
Description = Annotated[str, Field(max_length=DESCRIPTION_MAX_LENGTH), AfterValidator(storable)]
# Exact, and a string in JSON.
Price = Annotated[
    Decimal,
    Field(ge=0, le=PRICE_MAX, decimal_places=PRICE_DECIMAL_PLACES, allow_inf_nan=False),
]
Quantity = Annotated[int, Field(ge=0, le=QUANTITY_MAX)]
