"""Request and response bodies of /lists/{id}/consent-texts (README, "Registered wordings")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from app.api_fields import multi_line
from app.models import RegisteredWording
from app.models.enums import Language

# The longest wording a signup may carry or an operator register (consent_texts.text).
CONSENT_TEXT_MAX = 10_000


class WordingCreate(BaseModel):
    """The exact wording an operator's own signup form shows beside its consent box (CC-2).

    Trimmed of surrounding whitespace as a JSON signup's ``consent_text`` is, so that the two
    compare as the same text; otherwise compared exactly, character for character.
    """

    model_config = ConfigDict(extra="forbid")

    text: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=CONSENT_TEXT_MAX),
        AfterValidator(multi_line),
    ]
    language: Language | None = None


class WordingOut(BaseModel):
    list_id: int
    version: int
    hash: str
    text: str
    language: str | None
    created_at: datetime
    retired_at: datetime | None
    # False once retired: new JSON signups may no longer use it (the ledger keeps it).
    accepted: bool

    @classmethod
    def of(cls, wording: RegisteredWording, text: str) -> WordingOut:
        return cls(
            list_id=wording.list_id,
            version=wording.version,
            hash=wording.consent_text_hash,
            text=text,
            language=wording.language,
            created_at=wording.created_at,
            retired_at=wording.retired_at,
            accepted=wording.retired_at is None,
        )
