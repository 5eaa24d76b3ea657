"""Request and response bodies of /api-keys (DS-6): the key itself appears once, in the
answer to its creation, and never again."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from app.api_fields import JsonDbId, Line200, UtcTimestamp
from app.models.enums import ApiKeyScope

_MAX_SENDERS = 100


def expiry_moment(value: object) -> object:
    """A plain date (``2027-01-31``) is the key's last day: it expires at the end of that day,
    UTC (the next midnight); a timestamp with its offset is taken as given."""
    if isinstance(value, date) and not isinstance(value, datetime):
        day = value
    elif isinstance(value, str) and len(value.strip()) == 10:
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            raise PydanticCustomError(
                "date_format", "must be a date (2027-01-31) or a timestamp with its UTC offset"
            ) from None
    else:
        return value
    try:
        return datetime.combine(day, time(), UTC) + timedelta(days=1)
    except OverflowError:
        raise PydanticCustomError("datetime_range", "date out of range") from None


ExpiresAt = Annotated[UtcTimestamp, BeforeValidator(expiry_moment)]


class ApiKeyCreate(BaseModel):
    """A new key: its scope, the senders it is bound to (none: every sender) and an expiry."""

    model_config = ConfigDict(extra="forbid")

    name: Line200
    scope: ApiKeyScope = ApiKeyScope.ADMIN
    # Left out (or null): a key for every sender. An empty list is refused rather than read as
    # "every sender": a key meant to be bound must never come out unbound by mistake (DS-6).
    sender_ids: Annotated[list[JsonDbId], Field(min_length=1, max_length=_MAX_SENDERS)] | None = (
        None
    )
    expires_at: ExpiresAt | None = None


class ApiKeyOut(BaseModel):
    """A key as listed: never the key, nor its hash; ``prefix`` tells keys apart."""

    id: int
    name: str
    scope: str
    prefix: str
    sender_ids: list[int]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    """The answer to a creation: the only time the key itself is shown."""

    key: str
