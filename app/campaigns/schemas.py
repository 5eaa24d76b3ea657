"""Campaign request and response bodies (docs/reference.md, campaigns)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from app.api_fields import JsonDbId, Line200, UtcTimestamp


class CampaignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # MH-4: one line without control characters; ids within the integer columns (a larger one
    # would overflow the driver: a 500); an ISO 8601 time with its offset.
    name: Line200
    list_id: JsonDbId
    template_id: JsonDbId
    sender_id: JsonDbId | None = None
    scheduled_at: UtcTimestamp | None = None


class CampaignStats(BaseModel):
    total: int
    queued: int
    sending: int
    sent: int
    failed: int
    skipped_no_consent: int
    skipped_suppressed: int
    cancelled: int


class CampaignOut(BaseModel):
    id: int
    name: str
    list_id: int
    template_id: int
    sender_id: int
    status: str
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    stats: CampaignStats
    # Only in the answer to send and resume: what the preflight let through, e.g. no DKIM key.
    warnings: list[str] = []


class CampaignPage(BaseModel):
    items: list[CampaignOut]
    next_cursor: str | None


class DeliveryOut(BaseModel):
    id: int
    email: str
    status: str
    consent_event_id: int | None
    attempts: int
    sent_at: datetime | None
    smtp_response: str | None


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None
