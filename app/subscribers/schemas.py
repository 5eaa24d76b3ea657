"""Request and response bodies of /subscribers (docs/reference.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator
from pydantic_core import PydanticCustomError

from app.api_fields import EmailAddress, JsonObject, Line200
from app.subscriptions.schemas import SubscriptionOut

# APPI Art. 2(3) "special care-required" information. Shodaku has no field for it (DS-5), and
# an attribute of that name would be one by the back door.
SENSITIVE_ATTRIBUTE_KEYS = frozenset(
    {
        "race",
        "ethnicity",
        "ethnic_origin",
        "creed",
        "religion",
        "religious_belief",
        "belief",
        "social_status",
        "medical_history",
        "medical_record",
        "health",
        "health_checkup",
        "disease",
        "illness",
        "disability",
        "criminal_record",
        "criminal_history",
        "conviction",
        "crime_victim",
        "人種",
        "信条",
        "社会的身分",
        "病歴",
        "犯罪歴",
        "犯罪の経歴",
        "前科",
        "犯罪被害",
        "障害",
        "健康診断",
    }
)


def _no_sensitive_keys(value: dict[str, Any]) -> dict[str, Any]:
    """DS-5: no fields for race, creed, medical history, criminal record and the like."""
    for key in value:
        normalized = key.strip().casefold().replace(" ", "_").replace("-", "_")
        if normalized in SENSITIVE_ATTRIBUTE_KEYS:
            raise PydanticCustomError(
                "sensitive_attribute",
                "'{key}' would hold special care-required personal data, which Shodaku does "
                "not keep (DS-5)",
                {"key": key},
            )
    return value


Attributes = Annotated[JsonObject, AfterValidator(_no_sensitive_keys)]


class SubscriberCreate(BaseModel):
    """A person, with no consent at all: consent is recorded per list (CC-1)."""

    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    name: Line200 | None = None
    attributes: Attributes | None = None


class SubscriberUpdate(BaseModel):
    """DS-2: a correction of the name and attributes. ``attributes``, when given, replaces the
    whole object. The address cannot be changed: a new address needs its own fresh opt-in."""

    model_config = ConfigDict(extra="forbid")

    email: Any = None
    name: Line200 | None = None
    attributes: Attributes | None = None

    @field_validator("email", mode="before")
    @classmethod
    def _address_is_not_corrected(cls, _value: object) -> None:
        raise PydanticCustomError(
            "email_immutable",
            "an address cannot be changed: consent belongs to the address it was given for, so "
            "a new address needs a fresh opt-in from that address (DS-2). Create it as a new "
            "subscriber and record its consent.",
        )


class SubscriberOut(BaseModel):
    id: int
    email: str
    name: str | None
    attributes: dict[str, Any]
    subscriptions: list[SubscriptionOut]
    created_at: datetime
    updated_at: datetime
