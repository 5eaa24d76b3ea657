"""Campaign request and response bodies (docs/reference.md, campaigns)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from app.api_fields import JsonDbId, Line200, UtcTimestamp
from app.models.enums import Language


class VariantIn(BaseModel):
    """The campaign's version for the subscribers of one language: a template of the list's
    sender (or a shared one), whose subject and bodies they get instead of the main one's."""

    model_config = ConfigDict(extra="forbid")

    template_id: JsonDbId


class Variants(BaseModel):
    """A campaign's versions by language: ``{"en": {"template_id": 7}}``. Only the languages
    Shodaku speaks (a key other than ``ja`` or ``en`` is 422)."""

    model_config = ConfigDict(extra="forbid")

    ja: VariantIn | None = None
    en: VariantIn | None = None

    def by_language(self) -> dict[Language, VariantIn]:
        found = {Language.JA: self.ja, Language.EN: self.en}
        return {language: variant for language, variant in found.items() if variant is not None}


class VariantOut(BaseModel):
    template_id: int


class CampaignCreate(BaseModel):
    """``template_id`` is the version for the list's language and for every language without a
    variant; ``variants`` gives another template per language, ``{"en": {"template_id": 7}}``.
    Each subscriber gets the version of their language, else the main one, and the legal
    footer in their language (MH-1)."""

    model_config = ConfigDict(extra="forbid")

    # MH-4: one line without control characters; ids within the integer columns (a larger one
    # would overflow the driver: a 500); an ISO 8601 time with its offset.
    name: Line200
    list_id: JsonDbId
    template_id: JsonDbId
    sender_id: JsonDbId | None = None
    scheduled_at: UtcTimestamp | None = None
    variants: Variants | None = None


class CampaignStats(BaseModel):
    total: int
    queued: int
    sending: int
    sent: int
    failed: int
    skipped_no_consent: int
    skipped_suppressed: int
    cancelled: int
    # What came back (SG-4, OO-1): bounces reported at the SMTP session or later by mail, and
    # complaints from feedback loops; the complaint rate is per message sent. Above 0.1% it is
    # flagged; above 0.3% the campaign pauses itself.
    hard_bounces: int = 0
    soft_bounces: int = 0
    complaints: int = 0
    complaint_rate: float = 0.0
    complaint_rate_flagged: bool = False


class CampaignOut(BaseModel):
    id: int
    name: str
    list_id: int
    template_id: int
    # Per language, the template its subscribers get instead of template_id.
    variants: dict[str, VariantOut] = {}
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
