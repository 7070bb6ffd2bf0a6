"""Items: the sample owned resource."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, Timestamps, UUIDPrimaryKey

PRICE_PRECISION = 12  # digits in all, two of them after the point


class Item(UUIDPrimaryKey, Timestamps, Base):
    """An item belongs to one user; its ``sku`` is unique per owner."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("owner_id", "sku"),
        CheckConstraint("price >= 0", name="price_non_negative"),
        CheckConstraint("quantity >= 0", name="quantity_non_negative"),
        # The list's sorts, each ending with the id that breaks ties (read in
        # index order up to the page's LIMIT), and its search by name.
        Index("ix_items_owner_id_created_at_id", "owner_id", "created_at", "id"),
        Index("ix_items_owner_id_name_id", "owner_id", "name", "id"),
        Index("ix_items_owner_id_price_id", "owner_id", "price", "id"),
        Index(
            "ix_items_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )

    owner_id: Mapped[UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    sku: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal] = mapped_column(Numeric(PRICE_PRECISION, 2), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
