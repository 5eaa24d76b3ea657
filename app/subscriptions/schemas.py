"""Request and response bodies of the consent domain's admin endpoints (docs/reference.md): recorded
consents, the consent ledger, opt-outs and suppressions."""

from __future__ import annotations

import ipaddress
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    StrictBool,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

from app.api_fields import (
    EmailAddress,
    HttpUrlText,
    JsonDbId,
    JsonObject,
    Line1000,
    Text2000,
    Text20000,
    UtcTimestamp,
)
from app.models import Subscription
from app.models.base import utcnow
from app.models.enums import ConsentMethod, Language, LegalBasis, OptOutChannel
from app.subscriptions.repository import GateVerdict

# A client's clock may run a little ahead of ours; a consent obtained "in the future" beyond
# this is a mistake in the data, not skew.
CLOCK_SKEW = timedelta(minutes=5)

# Methods that name how a person withdrew, not how consent was obtained.
WITHDRAWAL_METHODS = frozenset({ConsentMethod.ONE_CLICK, ConsentMethod.UNSUBSCRIBE_PAGE})


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise PydanticCustomError("ip", "not an IPv4 or IPv6 address") from None


IpAddress = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=64), AfterValidator(_ip)
]


class SubscriptionOut(BaseModel):
    """One subscription of a person to a list; ``gate`` is what the send gate says now (SG-1)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    subscriber_id: int
    list_id: int
    status: str
    basis: str | None
    requires_confirmation: bool
    confirmed_at: datetime | None
    grant_event_id: int | None
    confirm_event_id: int | None
    # The language the person's mail and pages come in: "ja" or "en"; null: the list's.
    language: str | None
    gate: GateVerdict
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, subscription: Subscription, gate: GateVerdict) -> SubscriptionOut:
        fields = {name: getattr(subscription, name) for name in cls.model_fields if name != "gate"}
        return cls.model_validate({**fields, "gate": gate})


# Evidence required per legal basis (CC-4, CR-1). Each model names the fields that must be
# there; anything else the operator adds is kept as given.


class _Evidence(BaseModel):
    model_config = ConfigDict(extra="allow")


_EvidenceText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
]


class OptInEvidence(_Evidence):
    """CR-1: where and how the person gave consent; with either the wording they agreed to
    (``consent_text``) or ``circumstances`` describing how it was given."""

    source: _EvidenceText
    circumstances: _EvidenceText | None = None


class WrittenNoticeEvidence(_Evidence):
    """CC-4, Art. 3(1)(ii): an address handed over in writing (a business card, a form)."""

    received_on: date
    received_by: _EvidenceText
    document_ref: _EvidenceText


class BusinessRelationshipEvidence(_Evidence):
    """CC-4, Art. 3(1)(iii): a transaction with the person."""

    transaction_ref: _EvidenceText
    transaction_date: date


class PublishedAddressEvidence(_Evidence):
    """CC-4, Art. 3(1)(iv): a business address published on the web, with no refusal wording
    (such as 広告メールお断り) beside it."""

    url: HttpUrlText
    seen_at: AwareDatetime | date
    no_refusal_notice: StrictBool

    @field_validator("no_refusal_notice")
    @classmethod
    def _must_be_true(cls, value: bool) -> bool:
        if value is not True:
            raise PydanticCustomError(
                "refusal_notice",
                "must be true: an address published beside refusal wording such as "
                "広告メールお断り may not be mailed (CC-4)",
            )
        return value


EVIDENCE_MODELS: dict[LegalBasis, type[_Evidence]] = {
    LegalBasis.OPT_IN: OptInEvidence,
    LegalBasis.WRITTEN_NOTICE: WrittenNoticeEvidence,
    LegalBasis.BUSINESS_RELATIONSHIP: BusinessRelationshipEvidence,
    LegalBasis.PUBLISHED_ADDRESS: PublishedAddressEvidence,
}


class ConsentCreate(BaseModel):
    """Consent obtained outside Shodaku's own forms, with its evidence (CC-1, CC-4, CR-1).

    The evidence is checked against the basis by the service, which names the missing field.
    """

    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    basis: LegalBasis
    method: ConsentMethod
    obtained_at: UtcTimestamp
    evidence: JsonObject
    consent_text: Text20000 | None = None
    ip: IpAddress | None = None
    user_agent: Line1000 | None = None
    source_url: HttpUrlText | None = None
    # The person's language for their mail and pages ("ja" or "en"). Absent: a new
    # subscription follows the list's; an existing one keeps what it had.
    language: Language | None = None

    @field_validator("obtained_at")
    @classmethod
    def _not_in_future(cls, value: datetime) -> datetime:
        if value > utcnow() + CLOCK_SKEW:
            raise PydanticCustomError("future", "must not be in the future")
        return value

    @field_validator("method")
    @classmethod
    def _a_way_of_consenting(cls, value: ConsentMethod) -> ConsentMethod:
        if value in WITHDRAWAL_METHODS:
            raise PydanticCustomError(
                "withdrawal_method",
                "{method} is a way of opting out, not of consenting",
                {"method": value.value},
            )
        return value


class ConsentEventOut(BaseModel):
    """One event of the append-only consent ledger (CR-1)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    email: str
    subscriber_id: int | None
    sender_id: int
    list_id: int | None
    basis: str | None
    method: str
    occurred_at: datetime
    obtained_at: datetime | None
    source_url: str | None
    ip: str | None
    user_agent: str | None
    consent_text_hash: str | None
    purpose: str | None
    evidence: dict[str, Any]
    double_opt_in_requested_at: datetime | None
    confirmed_at: datetime | None
    recorded_by: str
    scope: str | None
    channel: str | None
    note: str | None
    created_at: datetime


class ConsentRecorded(BaseModel):
    """The answer to a recorded consent: the grant event and the subscription it activated."""

    event: ConsentEventOut
    subscription: SubscriptionOut


class OptOutCreate(BaseModel):
    """An opt-out received by phone, letter, email or otherwise, recorded by an operator (OO-1).

    ``list_id`` given: that list only. Else ``sender_id`` given: every list of that sender.
    Else every sender of this installation (OO-5).
    """

    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    list_id: JsonDbId | None = None
    sender_id: JsonDbId | None = None
    channel: OptOutChannel
    note: Text2000 | None = None


class OptOutEffect(BaseModel):
    """What the opt-out did for one sender (and list); ``changed`` is false for a repeat."""

    sender_id: int
    list_id: int | None
    changed: bool
    event_ids: list[int]
    unsubscribed_list_ids: list[int]
    cancelled_deliveries: int


class OptOutRecorded(BaseModel):
    """``scope`` in the words suppressions use everywhere (answers, exports, the ledger):
    ``list``, ``sender``, or ``global`` for every sender, now and later (one effect per sender
    that exists, and a suppression of everything)."""

    email: str
    scope: Literal["list", "sender", "global"]
    changed: bool
    effects: list[OptOutEffect]


class SuppressionLiftOut(BaseModel):
    """The person's own confirmed opt-in on this list set the suppression aside for it (OO-6)."""

    list_id: int
    consent_event_id: int
    since: datetime


class SuppressionOut(BaseModel):
    scope: str
    sender_id: int | None
    list_id: int | None
    reason: str
    since: datetime
    consent_event_id: int | None
    # The lists the person came back to, each by their own confirmed opt-in; the suppression
    # still blocks every other list it covers (OO-6).
    lifted_for: list[SuppressionLiftOut] = []


class SuppressionStatus(BaseModel):
    """Whether and why an address must not be mailed (SG-2, OO-6). ``suppressed`` is true while
    any suppression still blocks some list: every one does, except a list-only suppression the
    person lifted for that same list."""

    email: str
    suppressed: bool
    suppressions: list[SuppressionOut]
