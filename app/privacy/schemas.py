"""Response bodies of the privacy endpoints (docs/reference.md): the disclosure export (DS-1)
and the erasure report (DS-3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.subscriptions.schemas import ConsentEventOut, SuppressionOut


class ExportedProfile(BaseModel):
    id: int
    email: str
    name: str | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ExportedSubscription(BaseModel):
    id: int
    list_id: int
    list_name: str
    sender_id: int
    sender_name: str
    status: str
    basis: str | None
    requires_confirmation: bool
    confirmed_at: datetime | None
    grant_event_id: int | None
    confirm_event_id: int | None
    # The language the person's mail and pages come in ("ja" or "en"), as they chose it or the
    # operator recorded it; null: none was, the list's applies (``list_language``).
    language: str | None
    list_language: str
    created_at: datetime
    updated_at: datetime


class ExportedEvent(ConsentEventOut):
    """A consent or opt-out event with the exact wording the person was shown (CR-1) and how
    long it is held (CR-2)."""

    consent_text: str | None
    retain_until: datetime


class ExportedDelivery(BaseModel):
    id: int
    campaign_id: int
    campaign_name: str
    list_id: int
    sender_id: int
    status: str
    attempts: int
    sent_at: datetime | None
    smtp_response: str | None
    consent_event_id: int | None
    created_at: datetime


class ExportedImport(BaseModel):
    """Where the address came from: an import and its acquisition record (DS-4)."""

    import_id: int
    list_id: int
    provider_name: str
    provider_address: str
    provider_representative: str
    acquisition_circumstances: str
    received_at: datetime
    items: dict[str, Any]
    imported_at: datetime
    retain_until: datetime
    row_number: int
    outcome: str
    consent_event_id: int | None
    detail: str | None


class SubscriberExport(BaseModel):
    """DS-1 (APPI Art. 33): everything Shodaku holds about one person."""

    exported_at: datetime
    subscriber: ExportedProfile
    subscriptions: list[ExportedSubscription]
    consent_events: list[ExportedEvent]
    suppressions: list[SuppressionOut]
    deliveries: list[ExportedDelivery]
    imports: list[ExportedImport]


class ErasureDeleted(BaseModel):
    """How many rows of each kind the erasure deleted."""

    profile: int
    attributes: int
    subscriptions: int
    deliveries: int
    unsent_deliveries_cancelled: int
    outbox_messages: int
    mail_files: int = Field(
        description="the file transport's .eml copies of mails to the person (no SMTP host)"
    )


class HeldRecords(BaseModel):
    count: int
    until: datetime | None
    reason: str


class ErasureHeld(BaseModel):
    """What the law requires to be kept, and until when (a legal hold)."""

    consent_events: HeldRecords
    import_records: HeldRecords


class ErasureSuppression(BaseModel):
    scope: str
    reason: str
    since: datetime
    stored_as: str


class ErasureReport(BaseModel):
    """DS-3 (APPI Art. 35): what was deleted, what is held and until when, and the suppression
    that keeps the address from ever being mailed again."""

    subscriber_id: int
    erased_at: datetime
    deleted: ErasureDeleted
    held: ErasureHeld
    suppression: ErasureSuppression
