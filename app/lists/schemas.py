"""Request and response bodies of /lists (docs/reference.md)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StrictBool,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

from app.api_fields import JsonDbId, Line200, Text5000
from app.models import MailingList
from app.models.enums import Charset, Language, SubscriptionStatus

_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


def _slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        raise PydanticCustomError(
            "slug",
            "a slug is lowercase letters a-z, digits and hyphens (not at either end); "
            "it is part of the signup URL /subscribe/<slug>",
        )
    return value


Slug = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_slug)]


def _charset_name(value: object) -> object:
    # Charset names are case-insensitive (RFC 2045): "ISO-2022-JP" is the same charset.
    return value.lower() if isinstance(value, str) else value


# "utf-8" or "iso-2022-jp" (docs/reference.md, "Lists").
ListCharset = Annotated[Charset, BeforeValidator(_charset_name)]


class ListCreate(BaseModel):
    """A mailing list of one sender. ``purpose`` is required: it is shown on the signup form
    and recorded with every consent (CC-5). Double opt-in is on unless turned off (CC-3)."""

    model_config = ConfigDict(extra="forbid")

    name: Line200
    slug: Slug
    sender_id: JsonDbId
    purpose: Text5000
    # StrictBool: the document says boolean; 0 or "no" is refused rather than guessed at.
    double_opt_in: StrictBool = True
    language: Language = Language.JA
    # The charset of the list's mails: ISO-2022-JP for readers on Japanese carrier addresses.
    charset: ListCharset = Charset.UTF_8
    # CR-1: JSON signups must carry a registered wording. Not given: the default, which
    # follows double_opt_in (on for a single opt-in list) for as long as it is not set.
    require_registered_wording: StrictBool | None = None


class ListUpdate(BaseModel):
    """Only the fields given change. ``sender_id`` may be repeated but not changed: consent is
    given to one sender (CC-1)."""

    model_config = ConfigDict(extra="forbid")

    name: Line200 | None = None
    slug: Slug | None = None
    sender_id: JsonDbId | None = None
    purpose: Text5000 | None = None
    double_opt_in: StrictBool | None = None
    language: Language | None = None
    charset: ListCharset | None = None
    # true or false sets it (kept when double_opt_in changes later); null returns it to the
    # default, which follows double_opt_in.
    require_registered_wording: StrictBool | None = None

    @field_validator("name", "slug", "sender_id", "purpose", "double_opt_in", "language", "charset")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise PydanticCustomError("not_null", "may not be null: every list has one")
        return value


class SubscriberCounts(BaseModel):
    """How many subscriptions of the list are in each status."""

    pending: int = 0
    active: int = 0
    unsubscribed: int = 0


class ListOut(BaseModel):
    id: int
    sender_id: int
    name: str
    slug: str
    purpose: str
    double_opt_in: bool
    language: str
    charset: str
    # The setting in force, and whether it is the operator's ("explicit") or follows
    # double_opt_in ("default": on exactly when the list is single opt-in).
    require_registered_wording: bool
    require_registered_wording_source: Literal["default", "explicit"]
    subscriber_counts: SubscriberCounts
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, mailing_list: MailingList, counts: dict[str, int]) -> ListOut:
        return cls(
            id=mailing_list.id,
            sender_id=mailing_list.sender_id,
            name=mailing_list.name,
            slug=mailing_list.slug,
            purpose=mailing_list.purpose,
            double_opt_in=mailing_list.double_opt_in,
            language=mailing_list.language,
            charset=mailing_list.charset,
            require_registered_wording=mailing_list.requires_registered_wording,
            require_registered_wording_source=(
                "default" if mailing_list.require_registered_wording is None else "explicit"
            ),
            subscriber_counts=SubscriberCounts(
                **{s.value: counts.get(s.value, 0) for s in SubscriptionStatus}
            ),
            created_at=mailing_list.created_at,
            updated_at=mailing_list.updated_at,
        )
