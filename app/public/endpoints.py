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

from fastapi import APIRouter, Depends, Request
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
from app.models import MailingList, Sender
from app.models.enums import ConsentMethod
from app.public import pages
from app.public.i18n import Lang, Translator, consent_wording, pick_lang
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


# --- signup ------------------------------------------------------------------------------------


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
    of use (CC-5), and the wording posted back so the record holds what was shown (CR-1)."""
    return pages.render(
        "signup.html",
        lang=lang,
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

    The form posts back the wording it showed. A form post can be forged, so it is only taken
    when it is exactly what this server renders for the list in that language (browsers turn
    line breaks into CRLF on submit; that difference is not a difference). Anything else is
    replaced by the server's own wording, which is what the hosted form shows.
    """
    expected = _server_wording(mailing_list, sender, lang)
    if posted is None or posted.replace("\r\n", "\n") != expected:
        log.info("signup form posted a consent wording that differs; recorded the server's")
    return expected


def _signup_from_json(body: bytes) -> SignupInput:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput("The body is not valid JSON.") from exc
    except RecursionError as exc:  # arrays nested thousands deep: no signup looks like that
        raise InvalidInput("The body is not a signup: it is nested too deep.") from exc
    try:
        parsed = JsonSignup.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInput(details) from exc
    return SignupInput(
        email=parsed.email,
        name=parsed.name or None,
        consent=parsed.consent is True,
        consent_text=parsed.consent_text,
        source_url=parsed.source_url,
        honeypot_filled=bool(parsed.website),
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


def _signup_accepted(
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
    if mailing_list.double_opt_in:
        if request_is_json:
            return pages.json_response(
                {
                    "status": "pending",
                    "detail": "If the address can be subscribed, a confirmation mail is on its "
                    "way to it; the subscription starts when the link in it is used.",
                },
                status_code=202,
                background=background,
            )
        t = Translator(lang)
        days = max(1, runtime.settings.confirm_token_max_age // 86400)
        return pages.render(
            "message.html",
            lang=lang,
            status_code=202,
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
    if request_is_json:
        return pages.json_response(
            {
                "status": "subscribed",
                "detail": "Subscribed. An address that had opted out first gets a "
                "confirmation mail, and is mailed only once it is confirmed.",
            },
            status_code=200,
            background=background,
        )
    t = Translator(lang)
    return pages.render(
        "message.html",
        lang=lang,
        sender=sender,
        mailing_list=mailing_list,
        background=background,
        title=t("subscribed.title"),
        paragraphs=[t("subscribed.body", list=mailing_list.name), t("subscribed.note")],
        alert=False,
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
    list_slug: str, request: Request, session: SessionDep, lang: str | None = None
) -> Response:
    """The hosted signup form (CC-2, CC-5), in ``?lang=ja|en`` or the list's language."""
    try:
        mailing_list, sender = await service.list_by_slug(session, list_slug)
    except NotFound:
        return pages.error_page("error.list_not_found", status_code=404)
    return _signup_page(request, mailing_list, sender, pick_lang(lang, mailing_list.language))


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
    """
    as_json = _is_json(request)
    try:
        mailing_list, sender = await service.list_by_slug(session, list_slug)
    except NotFound as exc:
        return (
            pages.json_error(exc)
            if as_json
            else pages.error_page("error.list_not_found", status_code=404)
        )

    ip = _client_ip(request) or "unknown"
    if not limits.per_ip.hit(ip):
        retry = {"Retry-After": str(limits.per_ip.retry_after(ip))}
        log.warning("signup refused: too many from one client list=%s", mailing_list.id)
        if as_json:
            return pages.json_error(
                TooManyRequests("Too many signups from this client; try again later."),
                headers=retry,
            )
        posted = (await _read_form(request)).get("lang") if not as_json else None
        lang = pick_lang(posted if isinstance(posted, str) else None, mailing_list.language)
        t = Translator(lang)
        return pages.render(
            "message.html",
            lang=lang,
            status_code=429,
            sender=sender,
            mailing_list=mailing_list,
            headers=retry,
            title=t("too_many.title"),
            paragraphs=[t("too_many.body")],
            alert=True,
        )

    if as_json:
        try:
            signup_input = _signup_from_json(await request.body())
        except InvalidInput as exc:
            return pages.json_error(exc)
    elif _media_type(request) in FORM_TYPES:
        signup_input = _signup_from_form(await _read_form(request))
    else:
        return pages.json_error(
            UnsupportedMediaType("Send the signup as a form (urlencoded or multipart) or as JSON.")
        )
    lang = pick_lang(signup_input.lang, mailing_list.language)

    if signup_input.honeypot_filled:
        # A bot filled the field people never see: tell it what it expects, keep nothing.
        log.info("signup honeypot filled list=%s", mailing_list.id)
        return _signup_accepted(as_json, mailing_list, sender, lang, runtime, wake=False)

    t = Translator(lang)
    errors: list[tuple[str, str]] = []  # (API detail, page message)
    if not signup_input.consent:
        errors.append(
            (
                "consent: the person must agree (tick the consent box); consent must be true.",
                t("error.consent_required"),
            )
        )
    email: str | None = None
    try:
        email = normalize_address(signup_input.email)
    except InvalidAddress:
        errors.append(("email: not a valid email address.", t("error.invalid_email")))
    if signup_input.name and len(signup_input.name) > NAME_MAX:
        errors.append((f"name: at most {NAME_MAX} characters.", t("error.name_too_long")))
    elif signup_input.name and not _one_line(signup_input.name):
        # MH-4: the name may be written into the To header of every mail to this person.
        errors.append(
            ("name: one line without line breaks or control characters.", t("error.name_invalid"))
        )
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
        except UnregisteredWording as exc:
            return pages.json_error(exc)

    if not limits.per_address.hit(hasher(email)):
        log.warning(
            "signup swallowed: too many for one address list=%s address=%s",
            mailing_list.id,
            mask_address(email),
        )
        return _signup_accepted(as_json, mailing_list, sender, lang, runtime, wake=False)

    outcome = await service.subscribe(
        session,
        hasher,
        mailing_list=mailing_list,
        email=email,
        name=signup_input.name,
        consent_text=wording,
        method=method,
        origin=_origin(request, source_url),
    )
    return _signup_accepted(
        as_json, mailing_list, sender, lang, runtime, wake=outcome.outbox_id is not None
    )


# --- confirm -------------------------------------------------------------------------------


def _token_error(exc: InvalidToken, *, kind: str) -> Response:
    """A plain 400 page for a link that cannot be used: never a 500, never JSON."""
    key = "error.link_expired" if isinstance(exc, ExpiredToken) else "error.link_invalid"
    log.info("%s link refused: %s", kind, type(exc).__name__)
    return pages.error_page(key, status_code=400)


async def _confirm_link_error(
    session: AsyncSession, runtime: Runtime, exc: InvalidToken
) -> Response:
    """A confirm link that cannot confirm: a 400 page that says what the person can do next.
    When the link was ours (expired, or its request is over), the page is in the list's
    language, points to the list's signup form, and names the sender and how to reach them."""
    list_id = exc.list_id
    if isinstance(exc, ExpiredToken) and exc.grant_event_id is not None:
        list_id = await service.link_list(session, exc.grant_event_id)
    known = await service.link_context(session, list_id)
    if known is None:
        return _token_error(exc, kind="confirm")
    mailing_list, sender = known
    log.info("confirm link refused: %s list=%s", type(exc).__name__, mailing_list.id)
    lang = pick_lang(None, mailing_list.language)
    t = Translator(lang)
    expired = isinstance(exc, ExpiredToken)
    return pages.render(
        "message.html",
        lang=lang,
        status_code=400,
        sender=sender,
        mailing_list=mailing_list,
        title=t("error.title"),
        paragraphs=[
            t("error.link_expired" if expired else "error.link_over"),
            t(
                "error.next_signup",
                url=f"{runtime.settings.base_url}/subscribe/{mailing_list.slug}",
            ),
            t("error.next_contact", sender=sender.name),
        ],
        alert=True,
    )


def _confirmed_page(
    result: service.ConfirmResult, mailing_list: MailingList, sender: Sender
) -> Response:
    lang = pick_lang(None, mailing_list.language)
    t = Translator(lang)
    paragraphs = [t("confirmed.body", sender=sender.name, list=mailing_list.name)]
    if result is service.ConfirmResult.ALREADY_CONFIRMED:
        paragraphs.append(t("confirmed.already"))
    paragraphs.append(t("confirmed.optout"))
    return pages.render(
        "message.html",
        lang=lang,
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
    token: str, request: Request, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """One button; changes nothing, so a link scanner opening the URL confirms nothing (CC-3).

    The same decision as the button's (``service.confirmation_target``): the button is shown
    only when pressing it will confirm; an already confirmed subscription says so, and a link
    that can no longer confirm is a 400 page already here. Above the button, the wording
    recorded with this request: what the person confirms (CR-1, CC-2, CC-5).
    """
    try:
        grant_event_id = runtime.signer.read_confirm(token)
        target = await service.confirmation_target(session, grant_event_id)
    except InvalidToken as exc:
        return await _confirm_link_error(session, runtime, exc)
    if target.result is service.ConfirmResult.ALREADY_CONFIRMED:
        return _confirmed_page(target.result, target.mailing_list, target.sender)
    return pages.render(
        "confirm.html",
        lang=pick_lang(None, target.mailing_list.language),
        sender=target.sender,
        mailing_list=target.mailing_list,
        action=request.url.path,
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
    try:
        grant_event_id = runtime.signer.read_confirm(token)
        outcome = await service.confirm(
            session, hasher, grant_event_id=grant_event_id, origin=_origin(request)
        )
    except InvalidToken as exc:
        await session.rollback()
        return await _confirm_link_error(session, runtime, exc)
    return _confirmed_page(outcome.result, outcome.mailing_list, outcome.sender)


# --- unsubscribe ---------------------------------------------------------------------------


@router.get(
    "/unsubscribe/{token}",
    response_class=HTMLResponse,
    responses=_token_responses("The page with the unsubscribe button; nothing changes (OO-3)"),
)
async def unsubscribe_page(
    token: str, request: Request, session: SessionDep, hasher: HasherDep, runtime: RuntimeDep
) -> Response:
    """One page, one button, and the scope choice with every list of the sender as the default
    (OO-2, OO-5). A GET changes nothing (OO-3). The address is shown masked, never in full."""
    try:
        claim = runtime.signer.read_unsubscribe(token)
        target = await service.unsubscribe_target(session, hasher, claim)
    except InvalidToken as exc:
        return _token_error(exc, kind="unsubscribe")
    return pages.render(
        "unsubscribe.html",
        lang=pick_lang(None, target.mailing_list.language),
        sender=target.sender,
        mailing_list=target.mailing_list,
        action=request.url.path,
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
        return _token_error(exc, kind="unsubscribe")
    lang = pick_lang(None, target.mailing_list.language)
    t = Translator(lang)
    body = (
        t("unsubscribed.body_list", list=target.mailing_list.name)
        if scope is UnsubscribeScope.LIST
        else t("unsubscribed.body_sender", sender=target.sender.name)
    )
    return pages.render(
        "message.html",
        lang=lang,
        sender=target.sender,
        mailing_list=target.mailing_list,
        title=t("unsubscribed.title"),
        paragraphs=[body, t("unsubscribed.no_mail"), t("unsubscribed.again")],
        alert=False,
    )
