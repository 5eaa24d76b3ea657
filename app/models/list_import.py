from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class ListImport(Base):
    """A list obtained from a third party, with its acquisition record (DS-4, APPI Art. 30):
    who provided it, how they obtained it, when it was received, which items it held. Kept,
    with the addresses it brought, for three years (``retain_until``)."""

    __tablename__ = "imports"
    # Ids are never reused, even on SQLite after a delete: the audit log names them.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("mailing_lists.id"), index=True)
    provider_name: Mapped[str] = mapped_column(String(300))
    provider_address: Mapped[str] = mapped_column(Text)
    provider_representative: Mapped[str] = mapped_column(String(300))
    acquisition_circumstances: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]
    items: Mapped[dict[str, Any]] = mapped_column(default=dict)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    recorded_by: Mapped[str] = mapped_column(String(100))
    retain_until: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
