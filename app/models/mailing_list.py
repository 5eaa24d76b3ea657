from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class MailingList(Base):
    __tablename__ = "mailing_lists"
    # Ids are never reused, even on SQLite after a delete: the audit log names them.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    # CC-5: the purpose of use, shown on the form and recorded with every consent.
    purpose: Mapped[str] = mapped_column(Text)
    double_opt_in: Mapped[bool] = mapped_column(default=True)
    language: Mapped[str] = mapped_column(String(2), default="ja")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
