from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class ApiKey(Base):
    """An admin API key, stored only as its SHA-256 (DS-6). The key itself is shown once.

    A key with rows in ``api_key_senders`` is bound to those senders: it sees and acts on their
    data only. A key past ``expires_at`` or with ``revoked_at`` set authenticates no request.
    """

    __tablename__ = "api_keys"
    # Ids are never reused, even on SQLite after a delete: the audit log names them.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(10))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    # Updated at most once a minute per key (app.auth.service), not on every request.
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ApiKeySender(Base):
    """One sender an API key is bound to (DS-6): the key acts for these senders only."""

    __tablename__ = "api_key_senders"

    api_key_id: Mapped[int] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id"), primary_key=True, index=True)
