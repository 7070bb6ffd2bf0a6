"""What a valid item field is. The API's schemas and the CSV import share
these limits, so a row the import accepts is one the API would accept."""

from __future__ import annotations

import re
from decimal import Decimal

SKU_MAX_LENGTH = 64
SKU_PATTERN = r"^[A-Za-z0-9._-]+$"
NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 10_000
# Numeric(12, 2) in the database.
PRICE_MAX = Decimal("9999999999.99")
PRICE_DECIMAL_PLACES = 2
# Postgres integer.
QUANTITY_MAX = 2_147_483_647

SKU_RE = re.compile(SKU_PATTERN)
# The columns of an item CSV, in the order exports write them.
CSV_COLUMNS = ("sku", "name", "description", "price", "quantity")
