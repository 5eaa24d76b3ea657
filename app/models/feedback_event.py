from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class FeedbackEvent(Base):
    """What came back for a message Shodaku sent (SG-4, OO-1): a hard or soft bounce, a
    complaint from a feedback loop, or a refusal mailed to the unsubscribe address.

    Tied to the delivery (or confirmation outbox row) it answers, and to the address by its
    keyed hash only, as a suppression is (DS-3). ``dedupe_key`` makes the same report arriving
    twice one event. A complaint or a refusal also appends a withdrawal to the consent ledger:
    ``consent_event_id`` names it (no foreign key, so the ledger's purge never has to touch
    this table).
    """

    __tablename__ = "feedback_events"
    __table_args__ = (
        Index("ix_feedback_events_address_hash_received_at", "address_hash", "received_at"),
        Index("ix_feedback_events_campaign_id_kind", "campaign_id", "kind"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    address_hash: Mapped[str] = mapped_column(String(64))
    delivery_id: Mapped[int | None]
    outbox_id: Mapped[int | None]
    campaign_id: Mapped[int | None]
    # The enhanced status code of a bounce (RFC 3463), e.g. 5.1.1.
    status: Mapped[str | None] = mapped_column(String(16))
    # Who reported it: the reporting MTA of a bounce, the feedback loop of a complaint.
    reporter: Mapped[str | None] = mapped_column(String(200))
    consent_event_id: Mapped[int | None]
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
