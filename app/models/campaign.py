from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow
from app.models.enums import CampaignStatus


class Campaign(Base):
    """One mailing of one template to one list. The template is copied when sending starts, so
    editing the template later cannot change a campaign that is going out."""

    __tablename__ = "campaigns"
    __table_args__ = (
        Index("ix_campaigns_status_scheduled_at", "status", "scheduled_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    list_id: Mapped[int] = mapped_column(ForeignKey("mailing_lists.id"), index=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("templates.id"))
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id"))
    status: Mapped[str] = mapped_column(String(20), default=CampaignStatus.DRAFT)
    scheduled_at: Mapped[datetime | None]
    subject: Mapped[str | None] = mapped_column(String(998))
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    # Materialisation of deliveries proceeds in batches by subscription id; resumable.
    materialized_up_to: Mapped[int] = mapped_column(default=0)
    materialized: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
