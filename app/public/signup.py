"""A signup through a public door (CC-1, CC-2, CC-3, CR-1, SG-4): the hosted form and a JSON body
read into one ``SignupInput``, checked and recorded. The rules live here, no page: the doors in
``app.public.endpoints`` turn the outcome, or the refusal, into the answer."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from app.addresses import AddressHasher, InvalidAddress, mask_address, normalize_address
from app.errors import InvalidInput
from app.languages import Lang, choose_lang
from app.models import MailingList, Sender
from app.models.enums import ConsentMethod
from app.public import http
from app.public.i18n import Translator, consent_wording
from app.public.rate_limit import SignupLimits
from app.public.schemas import NAME_MAX, JsonSignup, SignupInput
from app.subscriptions import service
from app.wordings import service as wordings
from app.wordings.service import UnregisteredWording

log = logging.getLogger(__name__)


class SignupRefused(Exception):
    """The signup is refused (422) and nothing is stored: why, for the API's ``detail`` and
    for the hosted form's list of problems, both in the answer's language."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(api for api, _page in problems))
        self.api_detail = " ".join(api for api, _page in problems)
        self.page_messages = [page for _api, page in problems]


@dataclass(frozen=True, slots=True)
class SignupDone:
    """The signup was answered as accepted. ``mailed``: a confirmation mail is waiting in the
    outbox (wake its sender). The answer itself never says more than the list's setting."""

    mailed: bool


# --- reading both doors into one input -----------------------------------------------------

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


def from_json(body: bytes, request: Request, mailing_list: MailingList) -> SignupInput:
    """A JSON signup, or InvalidInput whose detail is in the answer's language: the body's
    ``lang``, else ``?lang=``, else the browser's, else the list's."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        # Not JSON, not UTF-8 (UnicodeDecodeError), or an integer literal past Python's
        # 4,300-digit limit, which json.loads reports as a plain ValueError: all answer 422.
        lang = choose_lang(http.asked(request), http.browser(request), mailing_list.language)
        raise InvalidInput(Translator(lang)("api.not_json")) from exc
    except RecursionError as exc:  # arrays nested thousands deep: no signup looks like that
        lang = choose_lang(http.asked(request), http.browser(request), mailing_list.language)
        raise InvalidInput(Translator(lang)("api.too_deep")) from exc
    body_lang = data.get("lang") if isinstance(data, dict) else None
    t = Translator(
        choose_lang(
            body_lang if isinstance(body_lang, str) else None,
            http.asked(request),
            http.browser(request),
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


def from_form(form: FormData) -> SignupInput:
    """The hosted form's post: a ticked box reads yes, on, true or 1."""

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


# --- the rules -------------------------------------------------------------------------------


def checked_address(signup: SignupInput, t: Translator) -> str:
    """CC-1, SG-4, MH-4: the normalised address of a signup that can be taken, else
    SignupRefused naming every problem at once (no consent, an invalid address, a name too long
    or one that would break the To header)."""
    problems: list[tuple[str, str]] = []  # (API detail, page message)
    if not signup.consent:
        problems.append((t("api.consent_required"), t("error.consent_required")))
    email: str | None = None
    try:
        email = normalize_address(signup.email)
    except InvalidAddress:
        problems.append((t("api.invalid_email"), t("error.invalid_email")))
    if signup.name and len(signup.name) > NAME_MAX:
        problems.append((t("api.name_too_long", max=NAME_MAX), t("error.name_too_long")))
    elif signup.name and not http.one_line(signup.name):
        # MH-4: the name may be written into the To header of every mail to this person.
        problems.append((t("api.name_invalid"), t("error.name_invalid")))
    if problems or email is None:
        raise SignupRefused(problems)
    return email


def server_wording(mailing_list: MailingList, sender: Sender, lang: Lang) -> str:
    """CC-2: the consent wording the hosted form shows in ``lang``."""
    return consent_wording(
        lang, sender_name=sender.name, list_name=mailing_list.name, purpose=mailing_list.purpose
    )


def shown_wording(posted: str | None, mailing_list: MailingList, sender: Sender, lang: Lang) -> str:
    """CC-2, CR-1: the wording to record for a hosted-form signup.

    The form posts back the wording it showed, and the language it showed it in. A form post
    can be forged, so the wording is only taken when it is exactly what this server renders for
    the list in that language (browsers turn line breaks into CRLF on submit; that difference
    is not a difference). Anything else is replaced by the server's own wording in that
    language, which is what the hosted form in that language shows.
    """
    expected = server_wording(mailing_list, sender, lang)
    if posted is None or posted.replace("\r\n", "\n") != expected:
        log.info("signup form posted a consent wording that differs; recorded the server's")
    return expected


async def sign_up(
    session: AsyncSession,
    hasher: AddressHasher,
    request: Request,
    *,
    limits: SignupLimits,
    base_url: str,
    mailing_list: MailingList,
    sender: Sender,
    signup: SignupInput,
    as_json: bool,
    chosen: Lang | None,
    lang: Lang,
) -> SignupDone:
    """One signup that passed the door's per-client limit (CC-1, CC-3, CR-1).

    A filled honeypot or a signup past the per-address limit is answered as accepted and keeps
    nothing (subscription bombing); a JSON signup whose wording the list does not accept is
    refused with InvalidInput before that limit counts it or anything is written. Otherwise the
    consent is recorded with the wording the person saw, in the language ``chosen`` (None:
    nothing said, the list's).
    """
    if signup.honeypot_filled:
        # A bot filled the field people never see: tell it what it expects, keep nothing.
        log.info("signup honeypot filled list=%s", mailing_list.id)
        return SignupDone(mailed=False)
    t = Translator(lang)
    email = checked_address(signup, t)
    if as_json:
        assert signup.consent_text is not None  # required by JsonSignup
        wording = signup.consent_text
        method = ConsentMethod.API
        source_url = signup.source_url or request.headers.get("referer")
        # CR-1: a list may accept only the wordings its operator registered; checked before
        # the per-address limit counts the signup or anything is written.
        try:
            await wordings.check_signup_wording(session, mailing_list, wording)
        except UnregisteredWording as exc:
            raise UnregisteredWording(
                t("api.unregistered_wording", list_id=mailing_list.id)
            ) from exc
    else:
        wording = shown_wording(signup.consent_text, mailing_list, sender, lang)
        method = ConsentMethod.WEB_FORM
        source_url = f"{base_url}/subscribe/{mailing_list.slug}?lang={lang}"

    if not limits.per_address.hit(hasher(email)):
        log.warning(
            "signup swallowed: too many for one address list=%s address=%s",
            mailing_list.id,
            mask_address(email),
        )
        return SignupDone(mailed=False)

    outcome = await service.subscribe(
        session,
        hasher,
        mailing_list=mailing_list,
        email=email,
        name=signup.name,
        consent_text=wording,
        method=method,
        origin=http.origin(request, source_url),
        language=chosen,
    )
    return SignupDone(mailed=outcome.outbox_id is not None)
