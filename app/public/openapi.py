"""The OpenAPI declarations of the public doors: the pages are HTML, the JSON signup answers
JSON; both are declared so that a client (and schemathesis) knows every answer these doors
give."""

from __future__ import annotations

from typing import Any

from app.errors import ErrorBody
from app.public.schemas import JsonSignup, SignupAnswer

_HTML: dict[str, Any] = {"text/html": {"schema": {"type": "string"}}}
_ERROR_JSON: dict[str, Any] = {"application/json": {"schema": ErrorBody.model_json_schema()}}
_ANSWER_JSON: dict[str, Any] = {"application/json": {"schema": SignupAnswer.model_json_schema()}}


def page(description: str) -> dict[str, Any]:
    return {"description": description, "content": _HTML}


def error(description: str) -> dict[str, Any]:
    """The API error body."""
    return {"description": description, "content": _ERROR_JSON}


def _page_or_error(description: str) -> dict[str, Any]:
    """An HTML page for the hosted form, the API error body for a JSON signup."""
    return {"description": description, "content": {**_HTML, **_ERROR_JSON}}


def _page_or_json(description: str) -> dict[str, Any]:
    return {"description": description, "content": {**_HTML, **_ANSWER_JSON}}


_SIGNUP_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["email", "consent"],
    "properties": {
        "email": {"type": "string"},
        "name": {"type": "string"},
        "consent": {"type": "string", "description": "ticked: yes, on, true or 1"},
        "consent_text": {"type": "string", "description": "the wording the form showed"},
        "lang": {"type": "string", "enum": ["ja", "en"]},
        "website": {"type": "string", "description": "honeypot: left empty by people"},
    },
}
SIGNUP_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": JsonSignup.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": _SIGNUP_FORM_SCHEMA},
            "multipart/form-data": {"schema": _SIGNUP_FORM_SCHEMA},
        },
    }
}
SIGNUP_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _page_or_json("Subscribed (a single opt-in list)"),
    202: _page_or_json("Pending: a confirmation mail is on its way (a double opt-in list, CC-3)"),
    404: _page_or_error("No list has this slug"),
    413: error("The body is too large"),
    415: error("Neither a form nor JSON"),
    422: _page_or_error(
        "No consent, an invalid address or name (CC-1, SG-4); for JSON, a consent_text that "
        "is not a registered wording of a list that requires one (CR-1)"
    ),
    429: _page_or_error("Too many signups from this client; see Retry-After"),
    503: error("The database cannot serve now"),
}
ONE_CLICK_DOC: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {
            media: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "List-Unsubscribe": {"type": "string", "enum": ["One-Click"]},
                        "scope": {"type": "string", "enum": ["sender", "list"]},
                    },
                }
            }
            for media in ("application/x-www-form-urlencoded", "multipart/form-data")
        },
    }
}


def token_responses(done: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: page(done),
        400: page("A link that cannot be used: tampered, unknown or expired"),
        413: error("The body is too large"),
        422: error("Validation error, in the API error body"),
        503: error("The database cannot serve now"),
    }
