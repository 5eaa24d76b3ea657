from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class SuppressionLift(Base):
    """One suppression set aside for one list by the person's own confirmed opt-in on that
    list (OO-6): the suppression itself stays, and keeps blocking every other list and sender.

    A new suppression of the same scope (another opt-out, a hard bounce, an erasure) deletes
    the lifts of that suppression, so it blocks everywhere again until the person confirms
    again. ``confirm_event_id`` is the confirmation that earned the lift; like a suppression's
    own event it is no foreign key, so the ledger's purge (CR-2) never has to touch it.
    """

    __tablename__ = "suppression_lifts"
    __table_args__ = (
        UniqueConstraint("suppression_id", "list_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    suppression_id: Mapped[int] = mapped_column(ForeignKey("suppressions.id", ondelete="CASCADE"))
    list_id: Mapped[int] = mapped_column(ForeignKey("mailing_lists.id"))
    confirm_event_id: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
