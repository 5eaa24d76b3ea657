"""The public pages and endpoints that recipients and signup forms use (docs/reference.md,
"Public pages").

No authentication: the signup form is open, and the confirm and unsubscribe links carry their own
signed tokens. Every GET only shows a page; only a POST changes anything (OO-3, link scanners).
Every answer goes out with the headers of ``pages.SECURITY_HEADERS`` and sets no cookie.

The unit of work (``SessionDep``) commits when an endpoint returns. A refusal (a 4xx page or
JSON error body) is raised as ``pages.Refusal``: the unit of work rolls back on the way out and
the handler sends the answer, so a refused request never commits half of anything. The rules
of a signup are in ``app.public.signup``; what these doors read from a request, in
``app.public.http``; their OpenAPI declarations, in ``app.public.openapi``.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask

from app.addresses import mask_address
from app.db import SessionDep
from app.deps import HasherDep, RuntimeDep
from app.errors import (
    AppError,
    InvalidInput,
    InvalidToken,
    NotFound,
    TooManyRequests,
)
from app.languages import Lang, choose_lang, supported
from app.models import MailingList, Sender
from app.models.enums import ConsentMethod
from app.public import http, openapi, pages
from app.public import signup as signup_rules
from app.public.i18n import Translator
from app.public.pages import Refusal
from app.public.rate_limit import SignupLimits, get_signup_limits
from app.public.schemas import (
    SignupInput,
)
from app.public.signup import SignupRefused
from app.runtime import Runtime
from app.subscriptions import service
from app.subscriptions.service import UnsubscribeScope
from app.tokens import ExpiredToken
from app.wordings.service import UnregisteredWording

log = logging.getLogger(__name__)

router = APIRouter(tags=["public"])

SignupLimitsDep = Annotated[SignupLimits, Depends(get_signup_limits)]

ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"


class UnsupportedMediaType(AppError):
    status_code = 415


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
        consent_text=signup_rules.server_wording(mailing_list, sender, lang),
        errors=errors or [],
        values=_form_values(signup),
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
    background = http.wake_outbox(runtime) if wake else None
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
        200: openapi.page("The signup form"),
        404: openapi.page("No list has this slug"),
        422: openapi.error("Validation error, in the API error body"),
        503: openapi.error("The database cannot serve now"),
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
            lang=choose_lang(lang, http.browser(request)),
            path=request.url.path,
        )
    page_lang = choose_lang(lang, http.browser(request), mailing_list.language)
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
    responses=openapi.SIGNUP_RESPONSES,
    openapi_extra=openapi.SIGNUP_DOC,
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
    as_json = http.is_json(request)
    path = request.url.path
    try:
        mailing_list, sender = await service.list_by_slug(session, list_slug)
    except NotFound:
        lang = choose_lang(http.asked(request), http.browser(request))
        if as_json:
            raise Refusal(pages.json_error(NotFound(Translator(lang)("api.not_found")))) from None
        raise Refusal(
            pages.error_page("error.list_not_found", status_code=404, lang=lang, path=path)
        ) from None

    ip = http.client_ip(request) or "unknown"
    if not limits.per_ip.hit(ip):
        retry = {"Retry-After": str(limits.per_ip.retry_after(ip))}
        log.warning("signup refused: too many from one client list=%s", mailing_list.id)
        if as_json:
            lang = choose_lang(http.asked(request), http.browser(request), mailing_list.language)
            raise Refusal(
                pages.json_error(TooManyRequests(Translator(lang)("api.too_many")), headers=retry)
            )
        posted = (await http.read_form(request)).get("lang")
        lang = choose_lang(
            posted if isinstance(posted, str) else None,
            http.asked(request),
            http.browser(request),
            mailing_list.language,
        )
        raise Refusal(
            _too_many_page(path, mailing_list, sender, lang, status_code=429, headers=retry)
        )

    if as_json:
        try:
            signup_input = signup_rules.from_json(await request.body(), request, mailing_list)
        except InvalidInput as exc:
            raise Refusal(pages.json_error(exc)) from None
    elif http.is_form(request):
        signup_input = signup_rules.from_form(await http.read_form(request))
    else:
        lang = choose_lang(http.asked(request), http.browser(request), mailing_list.language)
        raise Refusal(pages.json_error(UnsupportedMediaType(Translator(lang)("api.media_type"))))
    # The language the person chose (or their browser did); None: nothing said, the list's.
    chosen = supported(signup_input.lang) or supported(http.asked(request)) or http.browser(request)
    lang = choose_lang(chosen, mailing_list.language)

    try:
        done = await signup_rules.sign_up(
            session,
            hasher,
            request,
            limits=limits,
            base_url=runtime.settings.base_url,
            mailing_list=mailing_list,
            sender=sender,
            signup=signup_input,
            as_json=as_json,
            chosen=chosen,
            lang=lang,
        )
    except SignupRefused as refused:
        if as_json:
            raise Refusal(pages.json_error(InvalidInput(refused.api_detail))) from None
        raise Refusal(
            _signup_page(
                request,
                mailing_list,
                sender,
                lang,
                status_code=422,
                errors=refused.page_messages,
                signup=signup_input,
            )
        ) from None
    except UnregisteredWording as exc:
        raise Refusal(pages.json_error(exc)) from None
    return _signup_accepted(request, as_json, mailing_list, sender, lang, runtime, wake=done.mailed)


# --- confirm -------------------------------------------------------------------------------


def _token_error(request: Request, exc: InvalidToken, *, kind: str) -> Response:
    """A plain 400 page for a link that cannot be used: never a 500, never JSON. Whose link it
    was is unknown, so the language is the one asked for, else the browser's."""
    key = "error.link_expired" if isinstance(exc, ExpiredToken) else "error.link_invalid"
    log.info("%s link refused: %s", kind, type(exc).__name__)
    return pages.error_page(
        key,
        status_code=400,
        lang=choose_lang(http.asked(request), http.browser(request)),
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
    lang = choose_lang(http.asked(request), known.language, mailing_list.language)
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
    responses=openapi.token_responses("The page with the confirm button; nothing changes"),
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
        raise Refusal(
            await _confirm_link_error(request, session, runtime, exc, grant_event_id)
        ) from None
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
        action=http.action(request),
        consent_text=target.consent_text,
    )


@router.post(
    "/confirm/{token}",
    response_class=HTMLResponse,
    responses=openapi.token_responses("Confirmed (or already confirmed)"),
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
            session, hasher, grant_event_id=grant_event_id, origin=http.origin(request)
        )
    except InvalidToken as exc:
        await session.rollback()
        raise Refusal(
            await _confirm_link_error(request, session, runtime, exc, grant_event_id)
        ) from None
    lang = choose_lang(http.asked(request), outcome.language, outcome.mailing_list.language)
    return _confirmed_page(request, outcome.result, outcome.mailing_list, outcome.sender, lang)


# --- unsubscribe ---------------------------------------------------------------------------


@router.get(
    "/unsubscribe/{token}",
    response_class=HTMLResponse,
    responses=openapi.token_responses(
        "The page with the unsubscribe button; nothing changes (OO-3)"
    ),
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
        raise Refusal(_token_error(request, exc, kind="unsubscribe")) from None
    page_lang = choose_lang(lang, target.language, target.mailing_list.language)
    return pages.render(
        "unsubscribe.html",
        lang=page_lang,
        switch_url=pages.language_switch(request.url.path, page_lang),
        sender=target.sender,
        mailing_list=target.mailing_list,
        action=http.action(request),
        masked_address=mask_address(target.subscriber.email) if target.subscriber else None,
        withdrawn=target.withdrawn,
    )


@router.post(
    "/unsubscribe/{token}",
    response_class=HTMLResponse,
    responses=openapi.token_responses("Unsubscribed (repeats are harmless)"),
    openapi_extra=openapi.ONE_CLICK_DOC,
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
    form = await http.read_form(request)
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
            origin=http.origin(request),
        )
    except InvalidToken as exc:
        raise Refusal(_token_error(request, exc, kind="unsubscribe")) from None
    lang = choose_lang(http.asked(request), target.language, target.mailing_list.language)
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
