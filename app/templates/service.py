"""Templates: saved only when they compile and render in the sandbox; previews show exactly
what a recipient gets, legal footer included (MH-1, MH-4)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.api_fields import keyset_page
from app.audit.service import record_audit
from app.auth.scope import SenderIds, covers
from app.auth.service import Principal
from app.config import Settings
from app.errors import Conflict, InvalidInput, NotFound
from app.lists import repository as lists_repo
from app.mail.compose import CampaignComposer, Recipient, RenderedMessage, sample_recipient
from app.mail.identity import ListIdentity, SenderIdentity
from app.mail.sandbox import check_single_line
from app.models import MailingList, Sender, Subscriber, Template
from app.models.enums import Language
from app.runtime import Runtime
from app.senders import repository as senders_repo
from app.subscriptions import repository as subscriptions_repo
from app.templates import repository as repo
from app.templates.schemas import TemplateCreate, TemplateUpdate

# The identity a template is tried with when it is saved: every footer item is filled in, so a
# template that renders here renders for any complete sender.
_SAMPLE_SENDER = SenderIdentity(
    name="株式会社サンプル",
    postal_address="〒100-0001 東京都千代田区千代田1-1",
    contact_email="info@example.jp",
    contact_phone="03-0000-0000",
    contact_url="https://example.jp/contact",
    from_email="news@example.jp",
    from_name="サンプル通信",
    reply_to=None,
    responsible_person="山田花子",
)


_SAMPLE_LIST = ListIdentity(id=0, name="サンプルニュース", slug="sample", language=Language.JA)


_T = TypeVar("_T")

# Compiling and rendering a template is CPU work of up to about a second for a hostile one (the
# sandbox's limits): done on the event loop it would hold every other request, /healthz and
# every unsubscribe included (DS-6). It runs in these threads instead; two of them, so that a
# burst of hostile saves queues here rather than taking every thread of the process.
_TEMPLATE_WORK = ThreadPoolExecutor(max_workers=2, thread_name_prefix="template-check")


async def _off_the_loop(work: Callable[..., _T], /, *args: object, **kwargs: object) -> _T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_TEMPLATE_WORK, functools.partial(work, *args, **kwargs))


def validate_template(settings: Settings, *, subject: str, html: str, text: str | None) -> None:
    """Compile the three parts in the sandbox and compose one message for a sample recipient,
    the way a campaign does. Raises TemplateInvalid (422) with the part, line and reason: a
    syntax error, an unknown variable (StrictUndefined), a sandbox escape, a footer marker placed
    where nobody sees it or markup left open at the end (MH-1), a subject that would break the
    header (MH-4)."""
    check_single_line("subject", subject)
    composer = CampaignComposer.build(
        subject=subject,
        html=html,
        text=text,
        sender=_SAMPLE_SENDER,
        mailing_list=_SAMPLE_LIST,
        settings=settings,
        dkim=False,
    )
    composer.compose(sample_recipient(settings))


async def get_template(session: AsyncSession, senders: SenderIds, template_id: int) -> Template:
    """A template outside a bound key's senders (a shared one included) does not exist for it
    (DS-6)."""
    template = await repo.get(session, template_id)
    if template is None or not covers(senders, template.sender_id):
        raise NotFound(f"There is no template {template_id}.")
    return template


async def list_templates(
    session: AsyncSession, senders: SenderIds, *, after_id: int | None, limit: int
) -> tuple[list[Template], str | None]:
    rows = await repo.page(session, senders=senders, after_id=after_id, limit=limit + 1)
    return keyset_page(rows, limit, lambda t: t.id)


async def create_template(
    session: AsyncSession, principal: Principal, settings: Settings, data: TemplateCreate
) -> Template:
    """Save a template that compiles and renders in the sandbox; audited (DS-6).

    ``sender_id`` makes it one sender's template; without it the template is shared by every
    sender, which only a key bound to no sender may make: a bound key's template is always
    one of its senders' (its only sender's by default), and a sender outside its scope is
    answered as an unknown one (DS-6)."""
    check_single_line("name", data.name)
    sender_id = data.sender_id
    senders = principal.senders
    if sender_id is None and senders is not None:
        if len(senders) > 1:
            raise InvalidInput(
                "sender_id: required for a key bound to several senders: the template is "
                "made for one of them."
            )
        (sender_id,) = senders
    if sender_id is not None and (
        not covers(senders, sender_id) or await senders_repo.get(session, sender_id) is None
    ):
        raise InvalidInput(f"sender_id: there is no sender {sender_id}.")
    await _off_the_loop(
        validate_template, settings, subject=data.subject, html=data.html, text=data.text
    )
    template = Template(**data.model_dump(exclude={"sender_id"}), sender_id=sender_id)
    session.add(template)
    await session.flush()
    await record_audit(
        session, principal, "template.create", "template", template.id, {"name": template.name}
    )
    return template


async def update_template(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    template_id: int,
    data: TemplateUpdate,
) -> Template:
    """Change the fields given; the result is validated as a whole, as on creation."""
    template = await get_template(session, principal.senders, template_id)
    changes = data.model_dump(exclude_unset=True)
    merged = {
        "subject": template.subject,
        "html": template.html,
        "text": template.text,
        **{k: v for k, v in changes.items() if k in ("subject", "html", "text")},
    }
    if "name" in changes:
        check_single_line("name", changes["name"])
    await _off_the_loop(validate_template, settings, **merged)
    for key, value in changes.items():
        setattr(template, key, value)
    await session.flush()
    await record_audit(
        session,
        principal,
        "template.update",
        "template",
        template.id,
        {"fields": sorted(changes)},
    )
    return template


async def preview(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    template_id: int,
    *,
    subscriber_id: int | None,
    list_id: int | None,
    language: str | None = None,
) -> RenderedMessage:
    """What the recipient would get, rendered by the composer a campaign uses (MH-1 footer in
    both parts). The list gives the sender and the language: ``list_id``, else the subscriber's
    first list, else the first list. For a real subscriber the unsubscribe URL is their real,
    working link, which is why previews need an admin key. A bound key previews its senders'
    templates, for the people and lists they hold, only (DS-6); a sender's template defaults
    to that sender's lists."""
    senders = principal.senders
    template = await get_template(session, senders, template_id)
    subscriber: Subscriber | None = None
    if subscriber_id is not None:
        subscriber = await subscriptions_repo.visible_subscriber(session, senders, subscriber_id)
        if subscriber is None:
            raise NotFound(f"There is no subscriber {subscriber_id}.")
    mailing_list: MailingList | None
    if list_id is not None:
        mailing_list = await lists_repo.get_visible(session, senders, list_id)
        if mailing_list is None:
            raise NotFound(f"There is no list {list_id}.")
    else:
        own = frozenset({template.sender_id}) if template.sender_id is not None else senders
        mailing_list = await repo.first_list_of(session, subscriber.id, own) if subscriber else None
        if mailing_list is None:
            mailing_list = await repo.first_list(session, own)
    if mailing_list is None:
        raise Conflict(
            "There is no list yet: a preview needs one, for the sender, the language and the "
            "legal footer. Create a sender and a list first."
        )
    sender = await session.get(Sender, mailing_list.sender_id)
    if sender is None:  # a foreign key guarantees it; kept for the type checker
        raise Conflict(f"List {mailing_list.id} has no sender.")
    if subscriber is None:
        recipient = sample_recipient(runtime.settings)
    else:
        if language is None:
            language = await subscriptions_repo.subscription_language(
                session, subscriber.id, mailing_list.id
            )
        token = runtime.signer.unsubscribe_token(
            subscriber.id, mailing_list.id, subscriber.address_hash
        )
        recipient = Recipient(
            subscriber_id=subscriber.id,
            email=subscriber.email,
            name=subscriber.name,
            attributes=dict(subscriber.attributes or {}),
            unsubscribe_url=runtime.unsubscribe_url(token),
        )
    return await _off_the_loop(
        _render_preview, template, sender, mailing_list, runtime.settings, recipient, language
    )


def _render_preview(
    template: Template,
    sender: Sender,
    mailing_list: MailingList,
    settings: Settings,
    recipient: Recipient,
    language: str | None,
) -> RenderedMessage:
    composer = CampaignComposer.build(
        subject=template.subject,
        html=template.html,
        text=template.text,
        sender=SenderIdentity.of(sender),
        mailing_list=ListIdentity.of(mailing_list),
        settings=settings,
        dkim=False,
        language=language,
    )
    return composer.render(recipient)
