from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class ConsentEvent(Base):
    """The append-only consent ledger: one row per grant, confirmation and withdrawal (CR-1).

    The application inserts rows and never updates or deletes one. The address is kept on the
    event itself so that the evidence outlives the subscriber profile (DS-3).
    """

    __tablename__ = "consent_events"
    __table_args__ = (
        Index("ix_consent_events_list_id_id", "list_id", "id"),
        Index("ix_consent_events_email_id", "email", "id"),
        Index("ix_consent_events_sender_id_id", "sender_id", "id"),
        # Ids are never reused, even on SQLite once the newest events are purged: a purged
        # event's tombstone keeps its id, in the same id space as the live events (CR-3).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    email: Mapped[str] = mapped_column(String(320))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id"))
    # NULL on a withdrawal that covers every list of the sender (OO-5).
    list_id: Mapped[int | None] = mapped_column(ForeignKey("mailing_lists.id"))
    basis: Mapped[str | None] = mapped_column(String(30))
    method: Mapped[str] = mapped_column(String(30))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    obtained_at: Mapped[datetime | None]
    source_url: Mapped[str | None] = mapped_column(String(2000))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(1000))
    consent_text_hash: Mapped[str | None] = mapped_column(ForeignKey("consent_texts.hash"))
    purpose: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    double_opt_in_requested_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]
    # Who recorded it: "subject" (the person), "api_key:<id>", "import:<id>", "system".
    recorded_by: Mapped[str] = mapped_column(String(100))
    # Withdrawals: scope ("list" or "sender"), channel and an operator's note.
    scope: Mapped[str | None] = mapped_column(String(20))
    channel: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    # CR-3 tamper evidence: the previous event's hash for the same sender, and this event's.
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    chain_hash: Mapped[str | None] = mapped_column(String(64))
    # CR-2: the earliest moment a purge may remove this record (NULL: not computed yet).
    retain_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
