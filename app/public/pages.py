"""Rendering of the public pages: Jinja2 with autoescape, and the headers every page carries.

The pages carry tokens in their URLs, so none of them may be cached, leak a Referer, be framed
(clickjacking an unsubscribe or confirm button), or set a cookie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.background import BackgroundTask

from app.errors import AppError
from app.languages import LANGS, Lang
from app.models import MailingList, Sender
from app.public.i18n import LANGUAGE_NAMES, Translator, other_lang

PAGES_DIR = Path(__file__).resolve().parent / "page_html"

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
    loader=FileSystemLoader(PAGES_DIR),
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


def language_switch(path: str, lang: Lang, **query: str) -> str:
    """The address of this page in the other language: the same path (its list or token kept)
    with ``?lang=`` the other one, and any other query the page needs to show the same thing."""
    return f"{path}?{urlencode({'lang': other_lang(lang), **query})}"


def render(
    template: str,
    *,
    lang: Lang,
    switch_url: str,
    status_code: int = 200,
    sender: Sender | None = None,
    mailing_list: MailingList | None = None,
    background: BackgroundTask | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page in one language, with a link to itself in the other (``switch_url``, from
    :func:`language_switch`); the sender's identity goes in the footer when known."""
    other = other_lang(lang)
    html = _env.get_template(template).render(
        lang=lang,
        t=Translator(lang),
        switch={"url": switch_url, "lang": other, "name": LANGUAGE_NAMES[other]},
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


class Refusal(Exception):
    """A public door refusing a request with this answer (a page, or the JSON error body).

    Raised, not returned: the unit of work (``SessionDep``) rolls back on the way out, so a
    refused request never commits any part of itself; the handler that ``install`` registers
    then sends the answer as it is."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def install(app: FastAPI) -> None:
    """Register the handler that sends a :class:`Refusal`'s answer."""

    @app.exception_handler(Refusal)
    async def _refused(_request: Request, exc: Refusal) -> Response:
        return exc.response


def error_page(message_key: str, *, status_code: int, lang: Lang, path: str) -> HTMLResponse:
    """A plain page for a bad link or an unknown list. Nothing tells which list it was, so the
    language is the one asked for, else the browser's (the caller decides), with the switch to
    the other at the same address."""
    t = Translator(lang)
    return render(
        "message.html",
        lang=lang,
        switch_url=language_switch(path, lang),
        status_code=status_code,
        title=t("error.title"),
        paragraphs=[t(message_key)],
        alert=True,
    )


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
