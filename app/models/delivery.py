from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow
from app.models.enums import DeliveryStatus


class Delivery(Base):
    """One recipient of one campaign: the ledger of sending (SG-1). Unique per (campaign,
    subscriber), so materialising twice or a repeated job can never double anything."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("campaign_id", "subscriber_id"),
        # Ends with the id so that a claim reads a campaign's due rows in the index's own
        # order (repository._due_ids_first); also the statistics and the next due time.
        Index(
            "ix_deliveries_campaign_id_status_next_attempt_at_id",
            "campaign_id",
            "status",
            "next_attempt_at",
            "id",
        ),
        Index("ix_deliveries_subscriber_id_status", "subscriber_id", "status"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.QUEUED)
    # The consent event this delivery relied on when it was sent (SG-1).
    consent_event_id: Mapped[int | None] = mapped_column(ForeignKey("consent_events.id"))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    sent_at: Mapped[datetime | None]
    smtp_response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
