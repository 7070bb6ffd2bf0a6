"""A job's file is named in Content-Disposition safely, whatever name its
handler chose."""

from __future__ import annotations

import pytest

from api.jobs import attachment


def test_a_plain_name_is_sent_as_is() -> None:
    assert attachment("items-1b2c.csv") == 'attachment; filename="items-1b2c.csv"'


@pytest.mark.parametrize(
    "name",
    ['a"b.csv', "a\r\nSet-Cookie: x=1", "ré sumé.csv", "a\\b", "x" * 500, "", "a;b=c"],
)
def test_any_other_name_cannot_break_the_header(name: str) -> None:
    header = attachment(name)
    assert "\r" not in header
    assert "\n" not in header
    header.encode("latin-1")  # an HTTP header must be latin-1
    assert header.startswith('attachment; filename="')
    fallback = header.split('"')[1]
    assert fallback
    assert all(c.isalnum() or c in "._-" for c in fallback)
