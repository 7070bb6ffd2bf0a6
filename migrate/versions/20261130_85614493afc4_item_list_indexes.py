"""indexes for the items list at the quota: every sort, and the name search

Revision ID: 85614493afc4
Revises: 7c2f4d9e1a6b
Create Date: 2026-11-30 00:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "85614493afc4"
down_revision: str | None = "7c2f4d9e1a6b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One per sort the list offers, each ending with the id that breaks ties:
# a page is then read in index order and stops at its LIMIT, with no sort of
# the owner's items (an import gives all its rows the same created_at, so an
# index on (owner_id, created_at) alone left a sort of them all).
_SORTS = {
    "ix_items_owner_id_created_at_id": ["owner_id", "created_at", "id"],
    "ix_items_owner_id_name_id": ["owner_id", "name", "id"],
    "ix_items_owner_id_price_id": ["owner_id", "price", "id"],
}


def upgrade() -> None:
    # A trusted extension since PostgreSQL 13: the owner role (which runs
    # the migrations) may create it without being a superuser.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, columns in _SORTS.items():
        op.create_index(name, "items", columns)
    op.drop_index("ix_items_owner_id_created_at", table_name="items")
    # Serves `name ILIKE '%q%'` (the list's and the export's search) for a
    # q of three characters or more; the planner combines it with the owner.
    op.create_index(
        "ix_items_name_trgm",
        "items",
        ["name"],
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_items_name_trgm", table_name="items")
    op.create_index("ix_items_owner_id_created_at", "items", ["owner_id", "created_at"])
    for name in _SORTS:
        op.drop_index(name, table_name="items")
    # Without CASCADE: refused if anything else has come to depend on it.
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")
