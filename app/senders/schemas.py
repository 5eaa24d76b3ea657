"""Request and response bodies of /senders (docs/reference.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from app.api_fields import EmailAddress, HttpUrlText, Line50, Line200, Text2000
from app.senders.retention_policy import (
    DEFAULT_RETENTION_DAYS,
    LEGAL_MINIMUM_DAYS,
    MAXIMUM_RETENTION_DAYS,
)

# CR-2: days consent records are held after sending stops; the service also checks the higher
# minimum under a measures order.
RetentionDays = Annotated[int, Field(ge=LEGAL_MINIMUM_DAYS, le=MAXIMUM_RETENTION_DAYS)]


class SenderCreate(BaseModel):
    """The sender's identity, printed in every message (MH-1) and checked at send (SG-3).

    Lengths match the columns; every one-line field refuses CR/LF (MH-4). At least one contact
    for complaints and inquiries is required: the service checks it, also after a PATCH.
    """

    model_config = ConfigDict(extra="forbid")

    name: Line200
    postal_address: Text2000
    contact_email: EmailAddress | None = None
    contact_phone: Line50 | None = None
    contact_url: HttpUrlText | None = None
    from_email: EmailAddress
    from_name: Line200 | None = None
    reply_to: EmailAddress | None = None
    responsible_person: Line200 | None = None
    retention_days: RetentionDays = DEFAULT_RETENTION_DAYS
    under_measures_order: bool = False


class SenderUpdate(BaseModel):
    """Only the fields given change; ``null`` clears an optional field."""

    model_config = ConfigDict(extra="forbid")

    name: Line200 | None = None
    postal_address: Text2000 | None = None
    contact_email: EmailAddress | None = None
    contact_phone: Line50 | None = None
    contact_url: HttpUrlText | None = None
    from_email: EmailAddress | None = None
    from_name: Line200 | None = None
    reply_to: EmailAddress | None = None
    responsible_person: Line200 | None = None
    retention_days: RetentionDays | None = None
    under_measures_order: bool | None = None

    @field_validator(
        "name", "postal_address", "from_email", "retention_days", "under_measures_order"
    )
    @classmethod
    def _required_not_null(cls, value: str | int | bool | None) -> str | int | bool:
        if value is None:
            raise PydanticCustomError("not_null", "may not be null: every sender needs one")
        return value


class SenderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    postal_address: str
    contact_email: str | None
    contact_phone: str | None
    contact_url: str | None
    from_email: str
    from_name: str | None
    reply_to: str | None
    responsible_person: str | None
    retention_days: int
    under_measures_order: bool
    created_at: datetime
    updated_at: datetime
