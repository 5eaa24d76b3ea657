from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class Template(Base):
    """A marketer's message template (Jinja2, sandboxed). The legal footer is not part of it."""

    __tablename__ = "templates"
    # Ids are never reused, even on SQLite after a delete: the audit log names them.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL: shared by every sender (only keys not bound to senders see it); else the one
    # sender whose keys may see, edit and use it (DS-6).
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("senders.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(998))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
