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
    # The charset of the list's mails (Charset): campaigns and the confirmation mail.
    charset: Mapped[str] = mapped_column(String(16), default="utf-8", server_default="utf-8")
    # CR-1: whether a JSON signup must carry one of the list's registered wordings. NULL: the
    # default, which follows double_opt_in (on for a single opt-in list, where no confirmation
    # mail shows the person the wording); True/False: set by the operator, kept as set.
    require_registered_wording: Mapped[bool | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def requires_registered_wording(self) -> bool:
        """The setting in force: the operator's, else on exactly when no confirmation follows."""
        if self.require_registered_wording is not None:
            return self.require_registered_wording
        return not self.double_opt_in
