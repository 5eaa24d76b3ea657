"""Request and response bodies of /imports (docs/reference.md): a list obtained from a third
party, with its acquisition record (DS-4)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from app.api_fields import (
    DbId,
    EmailAddress,
    JsonDbId,
    JsonObject,
    Line200,
    Text2000,
    Text5000,
    UtcTimestamp,
    single_line,
)
from app.models import ImportItem, ListImport
from app.models.base import utcnow
from app.subscriptions.schemas import CLOCK_SKEW

# DS-4: the date of receipt alone, as the Art. 30 record asks for it.
_PLAIN_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EARLIEST_ZONE = timedelta(hours=14)  # the first zone where a date begins (Kiribati, UTC+14)

# A JSON body is parsed whole; larger lists come as a CSV file, which is streamed.
MAX_JSON_ROWS = 10_000

Line300 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300),
    AfterValidator(single_line),
]


class ImportOutcome(StrEnum):
    """What became of an address an import brought (DS-4, OO-6)."""

    CONSENTED = "consented"  # with evidence naming this sender: a grant, an active subscription
    UNCONSENTED = "unconsented"  # a subscriber with no subscription: never mailed
    SUPPRESSED = "suppressed"  # opted out or erased before: nothing changed


class ImportState(StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"  # stopped by an unexpected error; the batches committed before stand


class Acquisition(BaseModel):
    """DS-4 (APPI Art. 30): how this list came to us. Every field is required; the record is
    kept three years with the addresses it brought."""

    model_config = ConfigDict(extra="forbid")

    provider_name: Line300
    provider_address: Text2000
    provider_representative: Line300
    acquisition_circumstances: Text5000
    received_at: Annotated[
        UtcTimestamp,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "format": "date"},
                    {"type": "string", "format": "date-time"},
                ],
                "description": "the date of receipt, YYYY-MM-DD (kept as 00:00 UTC of that "
                "day), or a timezone-aware timestamp; not in the future",
            }
        ),
    ]
    items: Annotated[
        list[Line200],
        Field(min_length=1, max_length=100, description='the items provided, e.g. ["email"]'),
    ]

    @field_validator("received_at", mode="wrap")
    @classmethod
    def _date_or_timestamp(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> datetime:
        """DS-4: Art. 30 asks for the date the list was received, so a plain ISO date is enough.

        A date is kept as 00:00 UTC of that day and echoed as such; it is in the future only
        once that date has begun nowhere on Earth (UTC+14), so an operator east of UTC can give
        today's date before UTC midnight.
        """
        if isinstance(value, str) and _PLAIN_DATE.fullmatch(value.strip()):
            try:
                day = date.fromisoformat(value.strip())
            except ValueError:
                raise PydanticCustomError(
                    "date_from_datetime_parsing", "not a valid date"
                ) from None
            if day > (utcnow() + _EARLIEST_ZONE).date():
                raise PydanticCustomError("future", "must not be in the future")
            return datetime.combine(day, time(0), tzinfo=UTC)
        received: datetime = handler(value)
        if received > utcnow() + CLOCK_SKEW:
            raise PydanticCustomError("future", "must not be in the future")
        return received


class ImportCreate(BaseModel):
    """The JSON door. Each row is checked on its own by the service, so that a bad row is
    reported with its number while the others import."""

    model_config = ConfigDict(extra="forbid")

    acquisition: Acquisition
    list_id: JsonDbId
    rows: Annotated[list[Any], Field(min_length=1, max_length=MAX_JSON_ROWS)]


class ImportForm(Acquisition):
    """The multipart door: the acquisition record and list_id as form fields beside the CSV
    ``file``; ``items`` comma-separated."""

    list_id: DbId


class ImportRow(BaseModel):
    """One row, from either door: ``{email, name?, consent?}``."""

    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    name: Line200 | None = None
    consent: JsonObject | None = None


class RowError(BaseModel):
    row: int
    error: str


class RowNote(BaseModel):
    row: int
    note: str


class ImportReport(BaseModel):
    """The answer to POST /imports. ``imported`` = ``consented`` + ``unconsented``; suppressed
    rows are recorded but change nothing; ``invalid`` lists the first rows refused, with
    ``invalid_count`` counting them all; ``notes`` explains rows whose consent was not used."""

    import_id: int
    imported: int
    consented: int
    unconsented: int
    suppressed: int
    invalid: list[RowError]
    invalid_count: int
    notes: list[RowNote]
    rows: int
    ignored_columns: list[str]


class ImportCounts(BaseModel):
    rows: int = 0
    imported: int = 0
    consented: int = 0
    unconsented: int = 0
    suppressed: int = 0
    invalid: int = 0


class AcquisitionOut(BaseModel):
    provider_name: str
    provider_address: str
    provider_representative: str
    acquisition_circumstances: str
    received_at: datetime
    items: list[str]


class ImportOut(BaseModel):
    """An import: its acquisition record, how far it got and what it brought (DS-4)."""

    id: int
    list_id: int
    acquisition: AcquisitionOut
    state: ImportState
    counts: ImportCounts
    recorded_by: str
    created_at: datetime
    retain_until: datetime

    @classmethod
    def of(cls, record: ListImport) -> ImportOut:
        counts = dict(record.counts)
        state = counts.pop("state", ImportState.RUNNING)
        return cls(
            id=record.id,
            list_id=record.list_id,
            acquisition=AcquisitionOut(
                provider_name=record.provider_name,
                provider_address=record.provider_address,
                provider_representative=record.provider_representative,
                acquisition_circumstances=record.acquisition_circumstances,
                received_at=record.received_at,
                items=list(record.items.get("provided", [])),
            ),
            state=ImportState(state),
            counts=ImportCounts.model_validate(counts),
            recorded_by=record.recorded_by,
            created_at=record.created_at,
            retain_until=record.retain_until,
        )


class ImportItemOut(BaseModel):
    """One address the import brought and what became of it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    row: int
    email: str
    outcome: ImportOutcome
    subscriber_id: int | None
    consent_event_id: int | None
    detail: str | None

    @classmethod
    def of(cls, item: ImportItem) -> ImportItemOut:
        return cls(
            id=item.id,
            row=item.row_number,
            email=item.email,
            outcome=ImportOutcome(item.outcome),
            subscriber_id=item.subscriber_id,
            consent_event_id=item.consent_event_id,
            detail=item.detail,
        )
