from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class InstanceSecret(Base):
    """Secrets generated once per installation by the first migration.

    ``address_key`` keys the hashes of suppressed addresses. It lives with the data rather than in
    SHODAKU_SECRET_KEYS so that rotating the signing keys can never make a suppression stop
    matching (SG-2, DS-3).
    """

    __tablename__ = "instance_secrets"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
