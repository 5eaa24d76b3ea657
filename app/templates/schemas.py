"""Request and response bodies of /templates (docs/reference.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from app.api_fields import JsonDbId, Line200, multi_line, single_line
from app.models.enums import Language

# MH-4: the subject becomes a header: one line, no control characters; the column is 998 long.
SubjectSource = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=998),
    AfterValidator(single_line),
]
# A template body: line breaks allowed, no NUL (PostgreSQL cannot store it), bounded in size.
BodySource = Annotated[
    str,
    StringConstraints(min_length=1, max_length=500_000),
    AfterValidator(multi_line),
]


class TemplateCreate(BaseModel):
    """A template in Jinja2, compiled in the sandbox when saved; 422 if it does not compile."""

    model_config = ConfigDict(extra="forbid")

    name: Line200
    subject: SubjectSource
    html: BodySource
    text: BodySource | None = None
    # The sender whose template it is; none: shared by every sender (DS-6, README).
    sender_id: JsonDbId | None = None


class TemplateUpdate(BaseModel):
    """Only the fields given change; ``text: null`` goes back to text derived from the HTML."""

    model_config = ConfigDict(extra="forbid")

    name: Line200 | None = None
    subject: SubjectSource | None = None
    html: BodySource | None = None
    text: BodySource | None = None

    @field_validator("name", "subject", "html")
    @classmethod
    def _required_not_null(cls, value: str | None) -> str:
        if value is None:
            raise PydanticCustomError("not_null", "may not be null: every template needs one")
        return value


class TemplateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sender_id: int | None
    name: str
    subject: str
    html: str
    text: str | None
    created_at: datetime
    updated_at: datetime


class PreviewRequest(BaseModel):
    """Whom to render for (default: a sample recipient) and which list gives the sender and the
    footer (default: the subscriber's first list, else the first list). The footer's language
    is ``language``, else the subscriber's on that list, else the list's: the one a campaign
    would give that recipient."""

    model_config = ConfigDict(extra="forbid")

    subscriber_id: JsonDbId | None = None
    list_id: JsonDbId | None = None
    language: Language | None = None


class PreviewOut(BaseModel):
    """Exactly what the recipient would get, the legal footer included (MH-1)."""

    subject: str
    html: str
    text: str
