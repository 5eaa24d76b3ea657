"""What a signup door receives, parsed into one shape for the hosted form and for JSON."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, StrictBool

NAME_MAX = 200  # subscribers.name
SOURCE_URL_MAX = 2000  # consent_events.source_url
USER_AGENT_MAX = 1000  # consent_events.user_agent
CONSENT_TEXT_MAX = 10_000


class JsonSignup(BaseModel):
    """``POST /subscribe/{list_slug}`` with a JSON body, from a customer's own signup page.

    ``consent_text`` is required: it is the exact wording the person saw beside the button on
    that page, recorded as the evidence of the consent (CR-1). ``consent`` must be JSON ``true``
    (CC-1); a string such as ``"yes"`` is refused rather than guessed at.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    email: str = Field(max_length=320)
    name: str | None = Field(default=None, max_length=NAME_MAX)
    consent: StrictBool | None = None
    consent_text: str = Field(min_length=1, max_length=CONSENT_TEXT_MAX)
    source_url: str | None = Field(default=None, max_length=SOURCE_URL_MAX)
    # The same honeypot as the hosted form, for pages that copy it.
    website: str | None = None


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
