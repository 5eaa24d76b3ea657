from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class Suppression(Base):
    """An address that must not be mailed, stored only as a keyed hash (SG-2, OO-6, DS-3).

    ``scope_ref`` is the sender id (scope ``sender``), the list id (scope ``list``) or 0
    (scope ``global``), so that one unique constraint makes the upsert idempotent on both
    databases (a NULL would never collide).
    """

    __tablename__ = "suppressions"
    __table_args__ = (
        UniqueConstraint("address_hash", "scope", "scope_ref"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(10))
    scope_ref: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str] = mapped_column(String(30))
    consent_event_id: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
