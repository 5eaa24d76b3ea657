from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class Sender(Base):
    """The business that sends: its identity is printed in every message (MH-1, SG-3)."""

    __tablename__ = "senders"
    # Ids are never reused, even on SQLite after a delete: the audit log names them.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    postal_address: Mapped[str] = mapped_column(Text)
    contact_email: Mapped[str | None] = mapped_column(String(320))
    contact_phone: Mapped[str | None] = mapped_column(String(50))
    contact_url: Mapped[str | None] = mapped_column(String(2000))
    from_email: Mapped[str] = mapped_column(String(320))
    from_name: Mapped[str | None] = mapped_column(String(200))
    reply_to: Mapped[str | None] = mapped_column(String(320))
    responsible_person: Mapped[str | None] = mapped_column(String(200))
    # CR-2: how long consent records are held after sending to an address stops (days, default
    # three years) and whether the sender received a measures order (then at least one year).
    retention_days: Mapped[int] = mapped_column(default=1095, server_default="1095")
    under_measures_order: Mapped[bool] = mapped_column(default=False, server_default="0")
    # CR-3: the hash of the newest consent event of this sender (the head of its chain).
    ledger_head: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
