"""Campaign request and response bodies (API.md, campaigns)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _single_line(value: str) -> str:
    if any(ch in value for ch in "\r\n\x00"):
        raise ValueError("must be a single line (no CR, LF or NUL)")
    return value


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("must include a timezone offset, e.g. 2026-12-01T09:00:00+09:00")
    return value


class CampaignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_single_line)]
    list_id: int = Field(ge=1)
    template_id: int = Field(ge=1)
    sender_id: int | None = Field(default=None, ge=1)
    scheduled_at: Annotated[datetime | None, AfterValidator(_aware)] = None


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
