from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class RegisteredWording(Base):
    """A consent wording an operator's own signup form shows for one list, registered so that
    a JSON signup can be held to it (CC-2, CR-1).

    The text itself is stored once, by hash, in ``consent_texts``; this row says that the list
    uses it, as which version, and since when it is retired. Rows are never deleted: a retired
    wording is still what earlier consents reference.
    """

    __tablename__ = "registered_wordings"
    __table_args__ = (
        UniqueConstraint("list_id", "version"),
        UniqueConstraint("list_id", "consent_text_hash"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("mailing_lists.id"))
    # 1, 2, 3 ... per list, in the order they were registered.
    version: Mapped[int]
    consent_text_hash: Mapped[str] = mapped_column(ForeignKey("consent_texts.hash"))
    language: Mapped[str | None] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set once: from then on new signups may not use it; the ledger keeps referencing it.
    retired_at: Mapped[datetime | None]
