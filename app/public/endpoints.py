"""The public pages and endpoints that recipients and signup forms use (docs/reference.md,
"Public pages").

No authentication: the signup form is open, and the confirm and unsubscribe links carry their own
signed tokens. Every GET only shows a page; only a POST changes anything (OO-3, link scanners).
Every answer goes out with the headers of ``pages.SECURITY_HEADERS`` and sets no cookie.

The unit of work (``SessionDep``) commits when an endpoint returns. Where an endpoint turns an
error into a page instead of raising, it rolls the session back first, so a failed request
never commits half of anything.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from pydantic_core import PydanticCustomError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from app.addresses import InvalidAddress, mask_address, normalize_address
from app.api_fields import single_line
from app.db import SessionDep
from app.deps import HasherDep, RuntimeDep
from app.errors import (
    AppError,
    ErrorBody,
    InvalidInput,
    InvalidToken,
    NotFound,
    TooManyRequests,
)
from app.languages import Lang, choose_lang, supported
from app.models import MailingList, Sender
from app.models.enums import ConsentMethod
from app.public import pages
from app.public.i18n import Translator, accept_language, consent_wording
from app.public.rate_limit import SignupLimits, get_signup_limits
from app.public.schemas import (
    NAME_MAX,
    SOURCE_URL_MAX,
    USER_AGENT_MAX,
    JsonSignup,
    SignupAnswer,
    SignupInput,
)
from app.runtime import Runtime
from app.subscriptions import service
from app.subscriptions.service import RequestOrigin, UnsubscribeScope
from app.tokens import ExpiredToken
from app.wordings import service as wordings
from app.wordings.service import UnregisteredWording

log = logging.getLogger(__name__)

router = APIRouter(tags=["public"])

SignupLimitsDep = Annotated[SignupLimits, Depends(get_signup_limits)]

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"


class UnsupportedMediaType(AppError):
    status_code = 415


# --- the OpenAPI declarations of these doors ---------------------------------------------------
# The pages are HTML, the JSON signup answers JSON; both are declared so that a client (and
# schemathesis) knows every answer these doors give.

_HTML: dict[str, Any] = {"text/html": {"schema": {"type": "string"}}}
_ERROR_JSON: dict[str, Any] = {"application/json": {"schema": ErrorBody.model_json_schema()}}
_ANSWER_JSON: dict[str, Any] = {"application/json": {"schema": SignupAnswer.model_json_schema()}}


def _page(description: str) -> dict[str, Any]:
    return {"description": description, "content": _HTML}


def _error(description: str) -> dict[str, Any]:
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
_SIGNUP_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": JsonSignup.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": _SIGNUP_FORM_SCHEMA},
            "multipart/form-data": {"schema": _SIGNUP_FORM_SCHEMA},
        },
    }
}
_SIGNUP_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _page_or_json("Subscribed (a single opt-in list)"),
    202: _page_or_json("Pending: a confirmation mail is on its way (a double opt-in list, CC-3)"),
    404: _page_or_error("No list has this slug"),
    413: _error("The body is too large"),
    415: _error("Neither a form nor JSON"),
    422: _page_or_error(
        "No consent, an invalid address or name (CC-1, SG-4); for JSON, a consent_text that "
        "is not a registered wording of a list that requires one (CR-1)"
    ),
    429: _page_or_error("Too many signups from this client; see Retry-After"),
    503: _error("The database cannot serve now"),
}
_ONE_CLICK_DOC: dict[str, Any] = {
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


def _token_responses(done: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: _page(done),
        400: _page("A link that cannot be used: tampered, unknown or expired"),
        413: _error("The body is too large"),
        422: _error("Validation error, in the API error body"),
        503: _error("The database cannot serve now"),
    }


# --- request helpers --------------------------------------------------------------------------


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _is_json(request: Request) -> bool:
    media = _media_type(request)
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _client_ip(request: Request) -> str | None:
    # The peer address, or the client's when the peer is a trusted proxy: behind a reverse
    # proxy, SHODAKU_FORWARDED_ALLOW_IPS makes this the client, not the proxy (app/forwarded.py).
    return request.client.host if request.client else None


def _origin(request: Request, source_url: str | None = None) -> RequestOrigin:
    """CR-1: where a consent or opt-out came from, trimmed to what the ledger columns hold."""
    user_agent = request.headers.get("user-agent")
    return RequestOrigin(
        ip=_client_ip(request),
        user_agent=user_agent[:USER_AGENT_MAX] if user_agent else None,
        source_url=source_url[:SOURCE_URL_MAX] if source_url else None,
    )


async def _read_form(request: Request) -> FormData:
    """The posted form (urlencoded or multipart); never a file; an unreadable body is empty."""
    try:
        return await request.form(max_files=0, max_fields=50)
    except (MultiPartException, HTTPException):
        return FormData()


def _one_line(value: str) -> bool:
    try:
        single_line(value)
    except PydanticCustomError:
        return False
    return True


def _wake_outbox(runtime: Runtime) -> BackgroundTask:
    """Wake the outbox sender once the response is out, hence after the unit of work committed.

    An async function on purpose: a plain one would run in a worker thread, and an
    ``asyncio.Event`` may only be set from its own event loop.
    """

    async def wake() -> None:
        runtime.outbox_wakeup.set()

    return BackgroundTask(wake)


def _asked(request: Request) -> str | None:
    """The language the address asks for (``?lang=``): it decides this page, and only it."""
    return request.query_params.get("lang")


def _browser(request: Request) -> Lang | None:
    """The language of ours the browser prefers (``Accept-Language``), if any."""
    return accept_language(request.headers.get("accept-language"))


def _action(request: Request) -> str:
    """Where a page's own form posts: the page's address, with the ``?lang=`` it was asked in,
    so that the answer comes in the language the person was reading."""
    asked = supported(_asked(request))
    return f"{request.url.path}?lang={asked}" if asked else request.url.path


# --- signup ------------------------------------------------------------------------------------

# ``GET /subscribe/{slug}?answer=``: the answer pages of a signup, to be read in the other
# language. They are the same for every signup of the list (a form must not tell which addresses
# it knows), so showing them again reveals and changes nothing.
ANSWER_SENT = "sent"
ANSWER_BUSY = "busy"


def _form_values(signup: SignupInput | None) -> dict[str, str]:
    if signup is None:
        return {"email": "", "name": ""}
    return {"email": signup.email, "name": signup.name or ""}


def _signup_page(
    request: Request,
    mailing_list: MailingList,
    sender: Sender,
    lang: Lang,
    *,
    status_code: int = 200,
    errors: list[str] | None = None,
    signup: SignupInput | None = None,
) -> Response:
    """The hosted form: unticked box, the consent wording beside the button (CC-2), the purpose
    of use (CC-5), and the wording posted back so the record holds what was shown (CR-1). In
    the other language it shows that language's wording, and records it."""
    return pages.render(
        "signup.html",
        lang=lang,
        switch_url=pages.language_switch(request.url.path, lang),
        status_code=status_code,
        sender=sender,
        mailing_list=mailing_list,
        action=request.url.path,
        consent_text=_server_wording(mailing_list, sender, lang),
        errors=errors or [],
        values=_form_values(signup),
    )


def _server_wording(mailing_list: MailingList, sender: Sender, lang: Lang) -> str:
    return consent_wording(
        lang, sender_name=sender.name, list_name=mailing_list.name, purpose=mailing_list.purpose
    )


def _shown_wording(
    posted: str | None, mailing_list: MailingList, sender: Sender, lang: Lang
) -> str:
    """CC-2, CR-1: the wording to record for a hosted-form signup.

    The form posts back the wording it showed, and the language it showed it in. A form post
    can be forged, so the wording is only taken when it is exactly what this server renders for
    the list in that language (browsers turn line breaks into CRLF on submit; that difference
    is not a difference). Anything else is replaced by the server's own wording in that
    language, which is what the hosted form in that language shows.
    """
    expected = _server_wording(mailing_list, sender, lang)
    if posted is None or posted.replace("\r\n", "\n") != expected:
        log.info("signup form posted a consent wording that differs; recorded the server's")
    return expected


# What a field of a JSON signup got wrong, by pydantic's error type, for an answer in Japanese.
_FIELD_PROBLEMS = {
    "missing": "api.field.missing",
    "string_too_long": "api.field.too_long",
    "string_too_short": "api.field.too_short",
    "string_type": "api.field.string",
    "bool_type": "api.field.bool",
    "bool_parsing": "api.field.bool",
    "model_type": "api.field.object",
    "model_attributes_type": "api.field.object",
    "dict_type": "api.field.object",
    "enum": "api.field.choice",
    "literal_error": "api.field.choice",
    "header_unsafe": "api.field.one_line",
    "control_character": "api.field.text",
    "nul_character": "api.field.text",
    "surrogate": "api.field.text",
}


def _field_problem(error: Any, t: Translator) -> str:
    """One failed field of a JSON signup, in the answer's language (pydantic's own sentence in
    English, which already reads well; the catalogue's in Japanese)."""
    where = ".".join(str(p) for p in error["loc"]) or "body"
    if t.lang == "en":
        return f"{where}: {error['msg']}"
    ctx = error.get("ctx") or {}
    key = _FIELD_PROBLEMS.get(error["type"], "api.field.invalid")
    return f"{where}: " + t(
        key,
        max=ctx.get("max_length", ""),
        min=ctx.get("min_length", ""),
        expected=str(ctx.get("expected", "")).replace(" or ", "、").replace(", ", "、"),
        reason=error["msg"],
    )


def _signup_from_json(body: bytes, request: Request, mailing_list: MailingList) -> SignupInput:
    """A JSON signup, or InvalidInput whose detail is in the answer's language: the body's
    ``lang``, else ``?lang=``, else the browser's, else the list's."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        # Not JSON, not UTF-8 (UnicodeDecodeError), or an integer literal past Python's
        # 4,300-digit limit, which json.loads reports as a plain ValueError: all answer 422.
        t = Translator(choose_lang(_asked(request), _browser(request), mailing_list.language))
        raise InvalidInput(t("api.not_json")) from exc
    except RecursionError as exc:  # arrays nested thousands deep: no signup looks like that
        t = Translator(choose_lang(_asked(request), _browser(request), mailing_list.language))
        raise InvalidInput(t("api.too_deep")) from exc
    body_lang = data.get("lang") if isinstance(data, dict) else None
    t = Translator(
        choose_lang(
            body_lang if isinstance(body_lang, str) else None,
            _asked(request),
            _browser(request),
            mailing_list.language,
        )
    )
    try:
        parsed = JsonSignup.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("; ".join(_field_problem(e, t) for e in exc.errors())) from exc
    return SignupInput(
        email=parsed.email,
        name=parsed.name or None,
        consent=parsed.consent is True,
        consent_text=parsed.consent_text,
        source_url=parsed.source_url,
        honeypot_filled=bool(parsed.website),
        lang=parsed.lang,
    )


def _signup_from_form(form: FormData) -> SignupInput:
    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    return SignupInput(
        email=text("email"),
        name=text("name") or None,
        consent=text("consent").lower() in {"yes", "on", "true", "1"},
        consent_text=text("consent_text") or None,
        source_url=None,
        honeypot_filled=bool(text("website")),
        lang=text("lang") or None,
    )


def _accepted_page(
    path: str,
    mailing_list: MailingList,
    sender: Sender,
    lang: Lang,
    runtime: Runtime,
    *,
    status_code: int,
    background: BackgroundTask | None = None,
) -> Response:
    """The page that answers every accepted signup of the list (see ``_signup_accepted``)."""
    t = Translator(lang)
    switch_url = pages.language_switch(path, lang, answer=ANSWER_SENT)
    if mailing_list.double_opt_in:
        days = max(1, runtime.settings.confirm_token_max_age // 86400)
        return pages.render(
            "message.html",
            lang=lang,
            switch_url=switch_url,
            status_code=status_code,
            sender=sender,
            mailing_list=mailing_list,
            background=background,
            title=t("pending.title"),
            paragraphs=[
                t("pending.body", sender=sender.name),
                t("pending.expiry", days=days),
                t("pending.no_mail"),
            ],
            alert=False,
        )
    return pages.render(
        "message.html",
        lang=lang,
        switch_url=switch_url,
        status_code=status_code,
        sender=sender,
        mailing_list=mailing_list,
        background=background,
        title=t("subscribed.title"),
        paragraphs=[t("subscribed.body", list=mailing_list.name), t("subscribed.note")],
        alert=False,
    )


def _too_many_page(
    path: str,
    mailing_list: MailingList,
    sender: Sender,
    lang: Lang,
    *,
    status_code: int,
    headers: dict[str, str] | None = None,
) -> Response:
    t = Translator(lang)
    return pages.render(
        "message.html",
        lang=lang,
        switch_url=pages.language_switch(path, lang, answer=ANSWER_BUSY),
        status_code=status_code,
        sender=sender,
        mailing_list=mailing_list,
        headers=headers,
        title=t("too_many.title"),
        paragraphs=[t("too_many.body")],
        alert=True,
    )


def _signup_accepted(
    request: Request,
    request_is_json: bool,
    mailing_list: MailingList,
    sender: Sender,
    lang: Lang,
    runtime: Runtime,
    *,
    wake: bool,
) -> Response:
    """The one answer to every accepted signup, decided by the list's setting alone.

    Whether the address was new, pending, already active or suppressed, and whether the
    per-address limit or the honeypot swallowed the request, the caller gets the same answer:
    a signup form must not tell anyone which addresses are on a list.
    """
    background = _wake_outbox(runtime) if wake else None
    status_code = 202 if mailing_list.double_opt_in else 200
    if request_is_json:
        t = Translator(lang)
        return pages.json_response(
            {
                "status": "pending" if mailing_list.double_opt_in else "subscribed",
                "detail": t("api.pending" if mailing_list.double_opt_in else "api.subscribed"),
            },
            status_code=status_code,
            background=background,
        )
    return _accepted_page(
        request.url.path,
        mailing_list,
        sender,
        lang,
        runtime,
        status_code=status_code,
        background=background,
    )


@router.get(
    "/subscribe/{list_slug}",
    response_class=HTMLResponse,
    responses={
        200: _page("The signup form"),
        404: _page("No list has this slug"),
        422: _error("Validation error, in the API error body"),
        503: _error("The database cannot serve now"),
    },
)
async def signup_form(
    list_slug: str,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    lang: Annotated[
        str | None, Query(description="ja or en; else the browser's language, else the list's")
    ] = None,
    answer: Annotated[
        str | None,
        Query(
            description="sent or busy: the page that answers a signup (the same for every "
            "signup of the list), to read it in the other language; otherwise the form"
        ),
    ] = None,
) -> Response:
    """The hosted signup form (CC-2, CC-5), in ``?lang=ja|en``, else the browser's language
    (``Accept-Language``), else the list's; with a link to itself in the other language."""
    try:
        mailing_list, sender = await service.list_by_slug(session, list_slug)
    except NotFound:
        return pages.error_page(
            "error.list_not_found",
            status_code=404,
            lang=choose_lang(lang, _browser(request)),
            path=request.url.path,
        )
    page_lang = choose_lang(lang, _browser(request), mailing_list.language)
    if answer == ANSWER_SENT:
        return _accepted_page(
            request.url.path, mailing_list, sender, page_lang, runtime, status_code=200
        )
    if answer == ANSWER_BUSY:
        return _too_many_page(request.url.path, mailing_list, sender, page_lang, status_code=200)
    return _signup_page(request, mailing_list, sender, page_lang)


@router.post(
    "/subscribe/{list_slug}",
    response_class=Response,
    responses=_SIGNUP_RESPONSES,
    openapi_extra=_SIGNUP_DOC,
)
async def signup(
    list_slug: str,
    request: Request,
    session: SessionDep,
    hasher: HasherDep,
    runtime: RuntimeDep,
    limits: SignupLimitsDep,
) -> Response:
    """A signup, from the hosted form (urlencoded or multipart) or as JSON (CC-1, CC-2, CC-3).

    No ticked box / ``consent: true``: 422 and nothing stored (CC-1). An invalid address: 422
    (SG-4). Otherwise the answer depends on the list's setting only, never on what was known
    about the address. Too many signups from one client: 429; too many for one address: the
    usual answer, and nothing stored or mailed (subscription bombing).

    The person's language is the form's (its ``lang`` field, or ``lang`` in JSON), else
    ``?lang=``, else the browser's (``Accept-Language``): it is kept with the subscription, for
    the confirmation mail, the pages and campaigns; with none of them, the list's language
    applies. Pages and JSON ``detail`` answer in it.
    """
    as_json = _is_json(request)
    path = request.url.path
    try:
        mailing_list, sender = await service.list_by_slug(session, list_slug)
    except NotFound:
        lang = choose_lang(_asked(request), _browser(request))
        if as_json:
            return pages.json_error(NotFound(Translator(lang)("api.not_found")))
        return pages.error_page("error.list_not_found", status_code=404, lang=lang, path=path)

    ip = _client_ip(request) or "unknown"
    if not limits.per_ip.hit(ip):
        retry = {"Retry-After": str(limits.per_ip.retry_after(ip))}
        log.warning("signup refused: too many from one client list=%s", mailing_list.id)
        if as_json:
            lang = choose_lang(_asked(request), _browser(request), mailing_list.language)
            return pages.json_error(
                TooManyRequests(Translator(lang)("api.too_many")), headers=retry
            )
        posted = (await _read_form(request)).get("lang")
        lang = choose_lang(
            posted if isinstance(posted, str) else None,
            _asked(request),
            _browser(request),
            mailing_list.language,
        )
        return _too_many_page(path, mailing_list, sender, lang, status_code=429, headers=retry)

    if as_json:
        try:
            signup_input = _signup_from_json(await request.body(), request, mailing_list)
        except InvalidInput as exc:
            return pages.json_error(exc)
    elif _media_type(request) in FORM_TYPES:
        signup_input = _signup_from_form(await _read_form(request))
    else:
        lang = choose_lang(_asked(request), _browser(request), mailing_list.language)
        return pages.json_error(UnsupportedMediaType(Translator(lang)("api.media_type")))
    # The language the person chose (or their browser did); None: nothing said, the list's.
    chosen = supported(signup_input.lang) or supported(_asked(request)) or _browser(request)
    lang = choose_lang(chosen, mailing_list.language)

    if signup_input.honeypot_filled:
        # A bot filled the field people never see: tell it what it expects, keep nothing.
        log.info("signup honeypot filled list=%s", mailing_list.id)
        return _signup_accepted(request, as_json, mailing_list, sender, lang, runtime, wake=False)

    t = Translator(lang)
    errors: list[tuple[str, str]] = []  # (API detail, page message)
    if not signup_input.consent:
        errors.append((t("api.consent_required"), t("error.consent_required")))
    email: str | None = None
    try:
        email = normalize_address(signup_input.email)
    except InvalidAddress:
        errors.append((t("api.invalid_email"), t("error.invalid_email")))
    if signup_input.name and len(signup_input.name) > NAME_MAX:
        errors.append((t("api.name_too_long", max=NAME_MAX), t("error.name_too_long")))
    elif signup_input.name and not _one_line(signup_input.name):
        # MH-4: the name may be written into the To header of every mail to this person.
        errors.append((t("api.name_invalid"), t("error.name_invalid")))
    if errors or email is None:
        if as_json:
            return pages.json_error(InvalidInput(" ".join(api for api, _page in errors)))
        return _signup_page(
            request,
            mailing_list,
            sender,
            lang,
            status_code=422,
            errors=[page for _api, page in errors],
            signup=signup_input,
        )

    if as_json:
        assert signup_input.consent_text is not None  # required by JsonSignup
        wording = signup_input.consent_text
        method = ConsentMethod.API
        source_url = signup_input.source_url or request.headers.get("referer")
    else:
        wording = _shown_wording(signup_input.consent_text, mailing_list, sender, lang)
        method = ConsentMethod.WEB_FORM
        source_url = f"{runtime.settings.base_url}/subscribe/{mailing_list.slug}?lang={lang}"

    if as_json:
        # CR-1: a list may accept only the wordings its operator registered; checked before
        # the per-address limit counts the signup or anything is written.
        try:
            await wordings.check_signup_wording(session, mailing_list, wording)
        except UnregisteredWording:
            return pages.json_error(
                UnregisteredWording(t("api.unregistered_wording", list_id=mailing_list.id))
            )

    if not limits.per_address.hit(hasher(email)):
        log.warning(
            "signup swallowed: too many for one address list=%s address=%s",
            mailing_list.id,
            mask_address(email),
        )
        return _signup_accepted(request, as_json, mailing_list, sender, lang, runtime, wake=False)

    outcome = await service.subscribe(
        session,
        hasher,
        mailing_list=mailing_list,
        email=email,
        name=signup_input.name,
        consent_text=wording,
        method=method,
        origin=_origin(request, source_url),
        language=chosen,
    )
    return _signup_accepted(
        request,
        as_json,
        mailing_list,
        sender,
        lang,
        runtime,
        wake=outcome.outbox_id is not None,
    )


# --- confirm -------------------------------------------------------------------------------


def _token_error(request: Request, exc: InvalidToken, *, kind: str) -> Response:
    """A plain 400 page for a link that cannot be used: never a 500, never JSON. Whose link it
    was is unknown, so the language is the one asked for, else the browser's."""
    key = "error.link_expired" if isinstance(exc, ExpiredToken) else "error.link_invalid"
    log.info("%s link refused: %s", kind, type(exc).__name__)
    return pages.error_page(
        key,
        status_code=400,
        lang=choose_lang(_asked(request), _browser(request)),
        path=request.url.path,
    )


async def _confirm_link_error(
    request: Request,
    session: AsyncSession,
    runtime: Runtime,
    exc: InvalidToken,
    grant_event_id: int | None,
) -> Response:
    """A confirm link that cannot confirm: a 400 page that says what the person can do next.
    When the link was ours (expired, or its request is over), the page is in the person's
    language (else the list's), points to the list's signup form, and names the sender and how
    to reach them."""
    if isinstance(exc, ExpiredToken):
        grant_event_id = exc.grant_event_id
    elif exc.list_id is None:
        grant_event_id = None  # not a link whose request ended: nothing to say about it
    known = await service.refused_link_context(session, grant_event_id)
    if known is None:
        return _token_error(request, exc, kind="confirm")
    mailing_list, sender = known.mailing_list, known.sender
    log.info("confirm link refused: %s list=%s", type(exc).__name__, mailing_list.id)
    lang = choose_lang(_asked(request), known.language, mailing_list.language)
    t = Translator(lang)
    expired = isinstance(exc, ExpiredToken)
    return pages.render(
        "message.html",
        lang=lang,
        switch_url=pages.language_switch(request.url.path, lang),
        status_code=400,
        sender=sender,
        mailing_list=mailing_list,
        title=t("error.title"),
        paragraphs=[
            t("error.link_expired" if expired else "error.link_over"),
            t(
                "error.next_signup",
                url=f"{runtime.settings.base_url}/subscribe/{mailing_list.slug}?lang={lang}",
            ),
            t("error.next_contact", sender=sender.name),
        ],
        alert=True,
    )


def _confirmed_page(
    request: Request,
    result: service.ConfirmResult,
    mailing_list: MailingList,
    sender: Sender,
    lang: Lang,
) -> Response:
    t = Translator(lang)
    paragraphs = [t("confirmed.body", sender=sender.name, list=mailing_list.name)]
    if result is service.ConfirmResult.ALREADY_CONFIRMED:
        paragraphs.append(t("confirmed.already"))
    paragraphs.append(t("confirmed.optout"))
    return pages.render(
        "message.html",
        lang=lang,
        # The link's page in the other language: it shows this subscription, confirmed.
        switch_url=pages.language_switch(request.url.path, lang),
        sender=sender,
        mailing_list=mailing_list,
        title=t("confirmed.title"),
        paragraphs=paragraphs,
        alert=False,
    )


@router.get(
    "/confirm/{token}",
    response_class=HTMLResponse,
    responses=_token_responses("The page with the confirm button; nothing changes"),
)
async def confirm_page(
    token: str,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    lang: Annotated[
        str | None, Query(description="ja or en, for this page; else the person's language")
    ] = None,
) -> Response:
    """One button; changes nothing, so a link scanner opening the URL confirms nothing (CC-3).

    The same decision as the button's (``service.confirmation_target``): the button is shown
    only when pressing it will confirm; an already confirmed subscription says so, and a link
    that can no longer confirm is a 400 page already here. Above the button, the wording
    recorded with this request: what the person confirms (CR-1, CC-2, CC-5). In the language
    the person signed up in, else the list's; ``?lang=`` for this page only.
    """
    grant_event_id: int | None = None
    try:
        grant_event_id = runtime.signer.read_confirm(token)
        target = await service.confirmation_target(session, grant_event_id)
    except InvalidToken as exc:
        return await _confirm_link_error(request, session, runtime, exc, grant_event_id)
    page_lang = choose_lang(lang, target.subscription.language, target.mailing_list.language)
    if target.result is service.ConfirmResult.ALREADY_CONFIRMED:
        return _confirmed_page(
            request, target.result, target.mailing_list, target.sender, page_lang
        )
    return pages.render(
        "confirm.html",
        lang=page_lang,
        switch_url=pages.language_switch(request.url.path, page_lang),
        sender=target.sender,
        mailing_list=target.mailing_list,
        action=_action(request),
        consent_text=target.consent_text,
    )


@router.post(
    "/confirm/{token}",
    response_class=HTMLResponse,
    responses=_token_responses("Confirmed (or already confirmed)"),
)
async def confirm(
    token: str, request: Request, session: SessionDep, hasher: HasherDep, runtime: RuntimeDep
) -> Response:
    """The person confirms (CC-3): the subscription becomes active and a confirm event with
    this request's IP and user agent is appended (CR-1); a repeat says it is already done."""
    grant_event_id: int | None = None
    try:
        grant_event_id = runtime.signer.read_confirm(token)
        outcome = await service.confirm(
            session, hasher, grant_event_id=grant_event_id, origin=_origin(request)
        )
    except InvalidToken as exc:
        await session.rollback()
        return await _confirm_link_error(request, session, runtime, exc, grant_event_id)
    lang = choose_lang(_asked(request), outcome.language, outcome.mailing_list.language)
    return _confirmed_page(request, outcome.result, outcome.mailing_list, outcome.sender, lang)


# --- unsubscribe ---------------------------------------------------------------------------


@router.get(
    "/unsubscribe/{token}",
    response_class=HTMLResponse,
    responses=_token_responses("The page with the unsubscribe button; nothing changes (OO-3)"),
)
async def unsubscribe_page(
    token: str,
    request: Request,
    session: SessionDep,
    hasher: HasherDep,
    runtime: RuntimeDep,
    lang: Annotated[
        str | None, Query(description="ja or en, for this page; else the person's language")
    ] = None,
) -> Response:
    """One page, one button, and the scope choice with every list of the sender as the default
    (OO-2, OO-5). A GET changes nothing (OO-3). The address is shown masked, never in full. In
    the person's language, else the list's; ``?lang=`` for this page only."""
    try:
        claim = runtime.signer.read_unsubscribe(token)
        target = await service.unsubscribe_target(session, hasher, claim)
    except InvalidToken as exc:
        return _token_error(request, exc, kind="unsubscribe")
    page_lang = choose_lang(lang, target.language, target.mailing_list.language)
    return pages.render(
        "unsubscribe.html",
        lang=page_lang,
        switch_url=pages.language_switch(request.url.path, page_lang),
        sender=target.sender,
        mailing_list=target.mailing_list,
        action=_action(request),
        masked_address=mask_address(target.subscriber.email) if target.subscriber else None,
        withdrawn=target.withdrawn,
    )


@router.post(
    "/unsubscribe/{token}",
    response_class=HTMLResponse,
    responses=_token_responses("Unsubscribed (repeats are harmless)"),
    openapi_extra=_ONE_CLICK_DOC,
)
async def unsubscribe(
    token: str, request: Request, session: SessionDep, hasher: HasherDep, runtime: RuntimeDep
) -> Response:
    """Opt out at once (OO-1, SG-2); the answer is sent only after the opt-out committed.

    RFC 8058 one-click (a body of ``List-Unsubscribe=One-Click``, urlencoded or multipart) stops
    every list of the sender; the page's own form carries the person's scope choice (OO-5).
    200 and a page, never a redirect or a cookie; a repeat changes nothing (OO-3). The page
    says that no mail confirms the opt-out, and that only a new signup of the address can bring
    a confirmation request, at most one a day (OO-7, ``service.subscribe``).
    """
    form = await _read_form(request)
    one_click = form.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE
    scope = (
        UnsubscribeScope.LIST
        if not one_click and form.get("scope") == UnsubscribeScope.LIST.value
        else UnsubscribeScope.SENDER
    )
    try:
        claim = runtime.signer.read_unsubscribe(token)
        target, _outcome = await service.unsubscribe_by_token(
            session,
            hasher,
            claim=claim,
            scope=scope,
            method=ConsentMethod.ONE_CLICK if one_click else ConsentMethod.UNSUBSCRIBE_PAGE,
            origin=_origin(request),
        )
    except InvalidToken as exc:
        await session.rollback()
        return _token_error(request, exc, kind="unsubscribe")
    lang = choose_lang(_asked(request), target.language, target.mailing_list.language)
    t = Translator(lang)
    body = (
        t("unsubscribed.body_list", list=target.mailing_list.name)
        if scope is UnsubscribeScope.LIST
        else t("unsubscribed.body_sender", sender=target.sender.name)
    )
    return pages.render(
        "message.html",
        lang=lang,
        # The link's page in the other language: it shows the address as stopped.
        switch_url=pages.language_switch(request.url.path, lang),
        sender=target.sender,
        mailing_list=target.mailing_list,
        title=t("unsubscribed.title"),
        paragraphs=[body, t("unsubscribed.no_mail"), t("unsubscribed.again")],
        alert=False,
    )
