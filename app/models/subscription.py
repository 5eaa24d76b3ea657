from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow
from app.models.enums import SubscriptionStatus


class Subscription(Base):
    """One person on one list. ``status`` is derived state kept for speed: every change to it
    appends a ConsentEvent in the same transaction, and the ledger is the truth (CR-1)."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("subscriber_id", "list_id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    list_id: Mapped[int] = mapped_column(ForeignKey("mailing_lists.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=SubscriptionStatus.PENDING)
    basis: Mapped[str | None] = mapped_column(String(30))
    # The grant event this subscription currently rests on, and (double opt-in) its confirmation.
    grant_event_id: Mapped[int | None] = mapped_column(ForeignKey("consent_events.id"))
    confirm_event_id: Mapped[int | None] = mapped_column(ForeignKey("consent_events.id"))
    # Set when the subscription came through a double opt-in door (CC-3): then it is mailable
    # only once confirmed_at is set, whatever its status says.
    requires_confirmation: Mapped[bool] = mapped_column(default=False)
    # The language the person signed up in ("ja" or "en"): their confirmation mail, pages and
    # campaign versions. NULL: the list's language.
    language: Mapped[str | None] = mapped_column(String(2))
    confirmed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
