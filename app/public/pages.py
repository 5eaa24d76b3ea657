"""Rendering of the public pages: Jinja2 with autoescape, and the headers every page carries.

The pages carry tokens in their URLs, so none of them may be cached, leak a Referer, be framed
(clickjacking an unsubscribe or confirm button), or set a cookie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.background import BackgroundTask

from app.errors import AppError
from app.models import MailingList, Sender
from app.public.i18n import LANGS, Lang, Translator

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

SECURITY_HEADERS: dict[str, str] = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # No script at all; the one inline <style>; forms post only back to us; no framing.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}

_env = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(["html"], default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _link_or_none(url: str | None) -> str | None:
    """Only http(s) contact URLs become links: a ``javascript:`` URL stays inert text."""
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return None


def render(
    template: str,
    *,
    lang: Lang,
    status_code: int = 200,
    sender: Sender | None = None,
    mailing_list: MailingList | None = None,
    background: BackgroundTask | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page in one language; the sender's identity goes in the footer when known."""
    html = _env.get_template(template).render(
        lang=lang,
        t=Translator(lang),
        sender=sender,
        sender_link=_link_or_none(sender.contact_url) if sender else None,
        mailing_list=mailing_list,
        **context,
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={**SECURITY_HEADERS, **(headers or {})},
        background=background,
    )


def error_page(message_key: str, *, status_code: int) -> HTMLResponse:
    """A plain page for a bad link or an unknown list, in both languages: when the link cannot
    be read we do not know the list, hence not its language."""
    html = _env.get_template("error.html").render(
        lang="ja",
        parts=[(lang, Translator(lang)) for lang in LANGS],
        message_key=message_key,
    )
    return HTMLResponse(html, status_code=status_code, headers=dict(SECURITY_HEADERS))


def home_page(lang: Lang, root_path: str) -> HTMLResponse:
    """What this service is and where its API reference and health check are, in both
    languages, the one asked for first; nothing about any list or person."""
    order = sorted(LANGS, key=lambda part: part != lang)
    html = _env.get_template("home.html").render(
        lang=lang, parts=[(part, Translator(part)) for part in order], root=root_path
    )
    return HTMLResponse(html, headers=dict(SECURITY_HEADERS))


def json_response(
    body: dict[str, Any],
    *,
    status_code: int,
    headers: dict[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> JSONResponse:
    return JSONResponse(
        body,
        status_code=status_code,
        headers={**SECURITY_HEADERS, **(headers or {})},
        background=background,
    )


def json_error(exc: AppError, *, headers: dict[str, str] | None = None) -> JSONResponse:
    """The API error body, ``{"error": "<Class>", "detail": "..."}``."""
    return json_response(exc.body(), status_code=exc.status_code, headers=headers)
