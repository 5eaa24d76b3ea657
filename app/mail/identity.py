"""What a message says about who sends it and to which list: small frozen values, built once per
campaign (or confirmation) from whatever the caller stores them in. ``app.mail`` turns data into
bytes and knows nothing of the database."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Self

UTF_8 = "utf-8"
ISO_2022_JP = "iso-2022-jp"


@dataclass(frozen=True, slots=True)
class SenderIdentity:
    """MH-1, MH-2: the legal identity every message shows (name, responsible person, postal
    address, a way to reach the sender) and the addresses it comes from."""

    name: str
    from_email: str
    postal_address: str
    from_name: str | None = None
    reply_to: str | None = None
    responsible_person: str | None = None
    contact_email: str | None = None
    contact_phone: str | None = None
    contact_url: str | None = None

    @classmethod
    def of(cls, record: Any) -> Self:
        """The identity of any object with these attributes (the stored sender)."""
        return cls(**{f.name: getattr(record, f.name) for f in fields(cls)})

    @property
    def domain(self) -> str:
        """MH-2: the sender's own domain, of the envelope sender and the Message-ID."""
        return self.from_email.rpartition("@")[2] or "localhost"

    @property
    def contact(self) -> str:
        """The first way to reach the sender that is set."""
        return self.contact_email or self.contact_phone or self.contact_url or ""


@dataclass(frozen=True, slots=True)
class ListIdentity:
    """The list a message is sent for: its name and slug (List-Id), its language (the footer's
    when a recipient has none) and its charset (UTF-8 or ISO-2022-JP)."""

    id: int
    name: str
    slug: str
    language: str = "ja"
    charset: str = UTF_8

    @classmethod
    def of(cls, record: Any) -> Self:
        """The identity of any object with these attributes (the stored list)."""
        values = {f.name: getattr(record, f.name) for f in fields(cls)}
        # A stored list's enum or an unsaved one's unset default both read as the plain value.
        values["charset"] = str(values["charset"] or UTF_8)
        values["language"] = values["language"] or "ja"
        return cls(**values)
