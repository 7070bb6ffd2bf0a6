"""items

Revision ID: 37b1e62a2f32
Revises: 5eece5bae9d1
Create Date: 2026-11-21 22:33:33.257783+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "37b1e62a2f32"
down_revision: str | None = "5eece5bae9d1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("price >= 0", name=op.f("ck_items_price_non_negative")),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_items_quantity_non_negative")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_items_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
        sa.UniqueConstraint("owner_id", "sku", name=op.f("uq_items_owner_id_sku")),
    )
    op.create_index(
        "ix_items_owner_id_created_at", "items", ["owner_id", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_items_owner_id_created_at", table_name="items")
    op.drop_table("items")
