from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class ImportItem(Base):
    """One address an import brought, and what became of it (DS-4). Unique per import and
    address, so re-running an import adds nothing twice."""

    __tablename__ = "import_items"
    __table_args__ = (UniqueConstraint("import_id", "email"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("imports.id"), index=True)
    row_number: Mapped[int] = mapped_column(Integer)
    email: Mapped[str] = mapped_column(String(320), index=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    # consented, unconsented, suppressed
    outcome: Mapped[str] = mapped_column(String(20))
    consent_event_id: Mapped[int | None] = mapped_column(ForeignKey("consent_events.id"))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
