"""Every setting the app reads is documented in docs/configuration.md, the
table the README points to: a new setting without a row there fails here."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def setting_names() -> list[str]:
    """The environment variable of every field of every settings group."""
    names = []
    for group in Settings.model_fields.values():
        model = group.annotation
        assert isinstance(model, type)
        for name, field in model.model_fields.items():
            names.append((field.alias or name).upper())
    return names


def test_every_setting_has_a_row_in_the_configuration_table() -> None:
    rows = [
        line for line in DOCS.read_text(encoding="utf-8").splitlines() if line.startswith("| `")
    ]
    documented = " ".join(row.split(" | ")[0] for row in rows)
    names = setting_names()
    assert len(names) >= 50  # every group was read
    missing = [name for name in names if f"`{name}`" not in documented]
    assert missing == [], f"document these in {DOCS.name}: {missing}"
