"""What the public doors read from a request: its media type, its client, the languages it asks
for, its form. Small functions of the request alone, shared by the signup, confirm and
unsubscribe doors."""

from __future__ import annotations

from fastapi import Request
from pydantic_core import PydanticCustomError
from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from app.api_fields import single_line
from app.languages import Lang, supported
from app.public.i18n import accept_language
from app.public.schemas import SOURCE_URL_MAX, USER_AGENT_MAX
from app.runtime import Runtime
from app.subscriptions.service import RequestOrigin

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_json(request: Request) -> bool:
    media = media_type(request)
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def is_form(request: Request) -> bool:
    return media_type(request) in FORM_TYPES


def client_ip(request: Request) -> str | None:
    # The peer address, or the client's when the peer is a trusted proxy: behind a reverse
    # proxy, SHODAKU_FORWARDED_ALLOW_IPS makes this the client, not the proxy (app/forwarded.py).
    return request.client.host if request.client else None


def origin(request: Request, source_url: str | None = None) -> RequestOrigin:
    """CR-1: where a consent or opt-out came from, trimmed to what the ledger columns hold."""
    user_agent = request.headers.get("user-agent")
    return RequestOrigin(
        ip=client_ip(request),
        user_agent=user_agent[:USER_AGENT_MAX] if user_agent else None,
        source_url=source_url[:SOURCE_URL_MAX] if source_url else None,
    )


async def read_form(request: Request) -> FormData:
    """The posted form (urlencoded or multipart); never a file; an unreadable body is empty."""
    try:
        return await request.form(max_files=0, max_fields=50)
    except (MultiPartException, HTTPException):
        return FormData()


def one_line(value: str) -> bool:
    try:
        single_line(value)
    except PydanticCustomError:
        return False
    return True


def wake_outbox(runtime: Runtime) -> BackgroundTask:
    """Wake the outbox sender once the response is out, hence after the unit of work committed.

    An async function on purpose: a plain one would run in a worker thread, and an
    ``asyncio.Event`` may only be set from its own event loop.
    """

    async def wake() -> None:
        runtime.outbox_wakeup.set()

    return BackgroundTask(wake)


def asked(request: Request) -> str | None:
    """The language the address asks for (``?lang=``): it decides this page, and only it."""
    return request.query_params.get("lang")


def browser(request: Request) -> Lang | None:
    """The language of ours the browser prefers (``Accept-Language``), if any."""
    return accept_language(request.headers.get("accept-language"))


def action(request: Request) -> str:
    """Where a page's own form posts: the page's address, with the ``?lang=`` it was asked in,
    so that the answer comes in the language the person was reading."""
    lang = supported(asked(request))
    return f"{request.url.path}?lang={lang}" if lang else request.url.path
