"""What a signup door receives, parsed into one shape for the hosted form and for JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from app.api_fields import multi_line, single_line
from app.wordings.schemas import CONSENT_TEXT_MAX

NAME_MAX = 200  # subscribers.name
SOURCE_URL_MAX = 2000  # consent_events.source_url
USER_AGENT_MAX = 1000  # consent_events.user_agent


class JsonSignup(BaseModel):
    """``POST /subscribe/{list_slug}`` with a JSON body, from a customer's own signup page.

    ``consent_text`` is required: it is the exact wording the person saw beside the button on
    that page, recorded as the evidence of the consent (CR-1). ``consent`` must be JSON ``true``
    (CC-1); a string such as ``"yes"`` is refused rather than guessed at; so is a ``lang``
    other than ``ja`` or ``en``.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    # No CR/LF or other control character where a value may reach a header or one line of the
    # record (MH-4); no NUL anywhere (PostgreSQL refuses it: a 500 on one database only).
    email: Annotated[str, Field(max_length=320), AfterValidator(single_line)]
    name: Annotated[str, Field(max_length=NAME_MAX), AfterValidator(single_line)] | None = None
    consent: StrictBool | None = None
    consent_text: Annotated[
        str, Field(min_length=1, max_length=CONSENT_TEXT_MAX), AfterValidator(multi_line)
    ]
    source_url: (
        Annotated[str, Field(max_length=SOURCE_URL_MAX), AfterValidator(single_line)] | None
    ) = None
    # The same honeypot as the hosted form, for pages that copy it.
    website: str | None = None
    # The language of the page the person signed up on: their confirmation mail, pages and
    # campaigns come in it. Absent: ``?lang=``, else the browser's, else the list's. (A Literal,
    # not the Language enum: this schema is inlined in the OpenAPI document, where a $defs
    # reference would resolve nowhere.)
    lang: Literal["ja", "en"] | None = None


class SignupAnswer(BaseModel):
    """The answer to an accepted JSON signup: the same whether or not the address was known."""

    status: str
    detail: str


@dataclass(frozen=True, slots=True)
class SignupInput:
    """One signup attempt, whichever door it came through; nothing here is validated yet."""

    email: str
    name: str | None
    consent: bool
    consent_text: str | None
    source_url: str | None
    honeypot_filled: bool
    lang: str | None = None  # the hosted form's language, posted back with it
