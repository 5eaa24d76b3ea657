"""Field types shared by the admin API's request and response schemas.

Each type refuses what would otherwise reach the database or a mail header and fail there: an
id beyond the integer column (a 500 on PostgreSQL), a NUL or a lone surrogate in text (PostgreSQL
refuses both), a CR/LF in a value that may be written into a header (MH-4), a non-finite number
in JSON (JSONB refuses it). Refused input is a 422 with the field named, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from app.addresses import InvalidAddress, normalize_address

# The integer primary keys are 32-bit on PostgreSQL.
DB_ID_MAX = 2**31 - 1

DbId = Annotated[int, Field(ge=1, le=DB_ID_MAX)]
# An id in a JSON body: a JSON integer, not "1" nor 1.0 nor true (the document says integer).
JsonDbId = Annotated[int, Strict(), Field(ge=1, le=DB_ID_MAX)]


def _refuse_unstorable(value: str) -> None:
    """A NUL or a lone surrogate cannot be stored in PostgreSQL text or JSONB."""
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "text may not contain a NUL character")
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise PydanticCustomError("surrogate", "text may not contain unpaired surrogates")


def single_line(value: str) -> str:
    """MH-4: no CR, LF, NUL or any other control or line-separator character, so that a value
    written into a mail header can never start a new header line."""
    _refuse_unstorable(value)
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            raise PydanticCustomError(
                "header_unsafe",
                "must be one line without control characters (no CR, LF or NUL): "
                "it may be written into a mail header",
            )
    return value


def multi_line(value: str) -> str:
    """Body text: line breaks and tabs are allowed, other control characters are not."""
    _refuse_unstorable(value)
    for ch in value:
        if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t":
            raise PydanticCustomError(
                "control_character", "text may not contain control characters"
            )
    return value


# One-line text that may end up in a header or a footer line (MH-4), by column length.
Line50 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=50),
    AfterValidator(single_line),
]
Line200 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(single_line),
]
Line1000 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=1000),
    AfterValidator(single_line),
]
# Multi-line body text (postal address, purpose, notes, wording).
Text2000 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    AfterValidator(multi_line),
]
Text5000 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=5000),
    AfterValidator(multi_line),
]
Text20000 = Annotated[
    str,
    StringConstraints(min_length=1, max_length=20000),
    AfterValidator(multi_line),
]


def _email(value: object) -> str:
    """SG-4: syntax-invalid addresses are refused at every door; the stored form is normalised."""
    if not isinstance(value, str):
        raise PydanticCustomError("email", "an email address must be text")
    try:
        _refuse_unstorable(value)
        return normalize_address(value)
    except InvalidAddress as exc:
        raise PydanticCustomError(
            "email", "not a valid email address: {reason}", {"reason": str(exc)}
        ) from None


EmailAddress = Annotated[
    str, BeforeValidator(_email), WithJsonSchema({"type": "string", "format": "email"})
]


def _http_url(value: str) -> str:
    single_line(value)
    if any(ch.isspace() for ch in value):
        raise PydanticCustomError("url", "a URL may not contain spaces")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise PydanticCustomError("url", "must be an http:// or https:// URL")
    return value


HttpUrlText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    AfterValidator(_http_url),
]


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+09:00 has no UTC form a database could hold
        raise PydanticCustomError("datetime_range", "date out of range") from None


# Unambiguous (each digit can be matched one way only): the former ``\d+\.?\d*`` split a run of
# digits in every possible way before giving up, and 40,000 digits followed by a letter in a
# date field took 43 s on the event loop (DS-6).
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _iso_8601_only(value: object) -> object:
    """The OpenAPI document says ``date-time``: a number (which pydantic would read as a Unix
    time) is refused rather than guessed at."""
    if isinstance(value, int | float) or (
        isinstance(value, str) and _NUMBER.fullmatch(value.strip())
    ):
        raise PydanticCustomError(
            "datetime_format",
            "must be an ISO 8601 date and time with its UTC offset, e.g. 2026-06-01T09:00:00+09:00",
        )
    return value


# A timezone-aware instant, normalised to UTC (the timestamp columns refuse naive values).
UtcTimestamp = Annotated[AwareDatetime, BeforeValidator(_iso_8601_only), AfterValidator(_to_utc)]

# Free-form JSON objects (subscriber attributes, consent evidence) are kept small.
JSON_OBJECT_MAX_CHARS = 16_384
_JSON_MAX_DEPTH = 8


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > _JSON_MAX_DEPTH:
        raise PydanticCustomError("json_depth", "nested too deeply")
    if isinstance(value, str):
        _refuse_unstorable(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise PydanticCustomError("json_number", "numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_unstorable(str(key))
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)


def json_object(value: dict[str, Any]) -> dict[str, Any]:
    """A JSON object that PostgreSQL's JSONB and SQLite's JSON both accept, of bounded size."""
    _check_json(value)
    if len(json.dumps(value, ensure_ascii=False)) > JSON_OBJECT_MAX_CHARS:
        raise PydanticCustomError(
            "json_size", "too large (at most {max} characters)", {"max": JSON_OBJECT_MAX_CHARS}
        )
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(json_object)]


# Keyset pagination: the cursor is opaque to clients; it names the last id of the page before.
_CURSOR_PREFIX = "k1:"


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(value: object) -> int | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise PydanticCustomError("cursor", "not a valid cursor: pass a next_cursor as given")
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    number = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not number.isdigit() or len(number) > 10:
        raise PydanticCustomError("cursor", "not a valid cursor: pass a next_cursor as given")
    last_id = int(number)
    if last_id > DB_ID_MAX:
        raise PydanticCustomError("cursor", "not a valid cursor: pass a next_cursor as given")
    return last_id


Cursor = Annotated[int | None, BeforeValidator(decode_cursor), WithJsonSchema({"type": "string"})]

T = TypeVar("T")
R = TypeVar("R")


def keyset_page(
    rows: Sequence[R], limit: int, key: Callable[[R], int]
) -> tuple[list[R], str | None]:
    """Split rows fetched with ``limit + 1`` into one page and the cursor of the next, if any."""
    if len(rows) > limit:
        page = list(rows[:limit])
        return page, encode_cursor(key(page[-1]))
    return list(rows), None


class Page(BaseModel, Generic[T]):
    """One page of a keyset-paginated collection; pass ``next_cursor`` as ``cursor`` for the
    next one. ``next_cursor`` is null on the last page."""

    model_config = ConfigDict(from_attributes=True)

    items: list[T]
    next_cursor: str | None
