from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class LedgerTombstone(Base):
    """What remains of a consent event purged after its retention (CR-2): its id and hashes,
    so that the hash chain of the sender's ledger still verifies across the gap (CR-3)."""

    __tablename__ = "ledger_tombstones"

    event_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id"), index=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    chain_hash: Mapped[str] = mapped_column(String(64))
    purged_at: Mapped[datetime] = mapped_column(default=utcnow)
