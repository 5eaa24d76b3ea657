"""Campaign rules: creation, the send preflight, scheduling, pause, resume, cancel."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import record_audit
from app.auth.scope import SenderIds, covers, of_senders
from app.auth.service import Principal
from app.campaigns import repository as repo
from app.campaigns.schemas import CampaignCreate
from app.config import Settings
from app.errors import AppError, Conflict, InvalidInput, NotFound
from app.mail import iso2022jp
from app.models import Campaign, CampaignVariant, MailingList, Sender, Template
from app.models.base import utcnow
from app.models.enums import CampaignStatus, Charset
from app.senders.service import missing_identity
from app.sending import deliveries

if TYPE_CHECKING:
    from app.mail.compose import CampaignComposer, Recipient

log = logging.getLogger(__name__)


class PreflightFailed(Conflict):
    """409 with every reason the campaign cannot be sent (SG-3 and the other checks)."""


async def _get(
    session: AsyncSession, campaign_id: int, senders: SenderIds, *, for_update: bool = False
) -> Campaign:
    """A campaign of another sender than a bound key's does not exist for it (DS-6)."""
    stmt = select(Campaign).where(
        Campaign.id == campaign_id, of_senders(Campaign.sender_id, senders)
    )
    if for_update:
        stmt = stmt.with_for_update()
    campaign = (await session.scalars(stmt)).first()
    if campaign is None:
        raise NotFound(f"There is no campaign {campaign_id}.")
    return campaign


async def get_campaign(session: AsyncSession, principal: Principal, campaign_id: int) -> Campaign:
    return await _get(session, campaign_id, principal.senders)


async def _usable_template(
    session: AsyncSession, principal: Principal, mailing_list: MailingList, field: str, id_: int
) -> Template:
    """A template the campaign may use: one the key sees, of the list's sender or shared (CC-1:
    the mail goes out under the list's sender). Else InvalidInput naming ``field``."""
    template = await session.get(Template, id_)
    if template is None or not covers(principal.senders, template.sender_id):
        raise InvalidInput(f"{field}: there is no template {id_}.")
    if template.sender_id is not None and template.sender_id != mailing_list.sender_id:
        raise InvalidInput(
            f"{field}: template {template.id} is another sender's; a campaign uses its "
            "list's sender's templates or shared ones."
        )
    return template


async def variants_of(
    session: AsyncSession, campaign_ids: list[int]
) -> dict[int, list[CampaignVariant]]:
    """The language versions of these campaigns, by campaign."""
    found: dict[int, list[CampaignVariant]] = {campaign_id: [] for campaign_id in campaign_ids}
    for variant in await repo.variants_of(session, campaign_ids):
        found[variant.campaign_id].append(variant)
    return found


async def create_campaign(
    session: AsyncSession, principal: Principal, data: CampaignCreate
) -> Campaign:
    """A draft. Consent is given to one sender (CC-1): a campaign goes out under its list's
    sender, so a different ``sender_id`` is refused; so is a template of another sender, for
    the main version and for each language's (``variants``). A list or template outside a
    bound key's senders is answered as an unknown one (DS-6)."""
    mailing_list = await session.get(MailingList, data.list_id)
    if mailing_list is None or not covers(principal.senders, mailing_list.sender_id):
        raise InvalidInput(f"list_id: there is no list {data.list_id}.")
    await _usable_template(session, principal, mailing_list, "template_id", data.template_id)
    variants = data.variants.by_language() if data.variants else {}
    for language, variant in variants.items():
        await _usable_template(
            session,
            principal,
            mailing_list,
            f"variants.{language.value}.template_id",
            variant.template_id,
        )
    if data.sender_id is not None and data.sender_id != mailing_list.sender_id:
        raise InvalidInput(
            "sender_id: the list's subscribers consented to mail from its own sender "
            f"({mailing_list.sender_id}); a campaign cannot go out under another (CC-1)."
        )
    campaign = Campaign(
        name=data.name,
        list_id=mailing_list.id,
        template_id=data.template_id,
        sender_id=mailing_list.sender_id,
        status=CampaignStatus.DRAFT,
        scheduled_at=data.scheduled_at,
    )
    session.add(campaign)
    await session.flush()
    session.add_all(
        CampaignVariant(
            campaign_id=campaign.id, language=language.value, template_id=variant.template_id
        )
        for language, variant in variants.items()
    )
    await session.flush()
    await record_audit(
        session,
        principal,
        "campaign.create",
        "campaign",
        campaign.id,
        {"variants": sorted(lang.value for lang in variants)} if variants else None,
    )
    return campaign


@dataclass(frozen=True, slots=True)
class Started:
    campaign: Campaign
    dispatch: bool  # sending starts now: wake the senders
    warnings: list[str] = field(default_factory=list)  # what the preflight let through


async def send_campaign(
    session: AsyncSession, settings: Settings, principal: Principal, campaign_id: int
) -> Started:
    """The preflight, then start (or schedule) the campaign (SG-3, SG-1, MH-1).

    Refused with 409 and every reason at once: a sender identity lacking any item the law
    requires in each message, a template (the main one or a language's) that does not render
    or that places the footer where nobody would see it, characters the list's charset cannot
    carry, a list with nobody who may be mailed. The templates are copied into the campaign so
    later edits cannot change it.
    """
    from app.mail.compose import CampaignComposer, sample_recipient
    from app.mail.identity import ListIdentity, SenderIdentity

    campaign = await _get(session, campaign_id, principal.senders, for_update=True)
    if campaign.status != CampaignStatus.DRAFT:
        raise Conflict(
            f"The campaign is {campaign.status}; only a draft can be sent.",
            extra={"reasons": [f"status is {campaign.status}"]},
        )
    mailing_list = await session.get(MailingList, campaign.list_id)
    sender = await session.get(Sender, campaign.sender_id)
    template = await session.get(Template, campaign.template_id)
    variants = (await variants_of(session, [campaign.id]))[campaign.id]
    assert mailing_list is not None
    assert sender is not None
    reasons: list[str] = []
    missing = missing_identity(sender)
    if missing:
        reasons.append("sender identity incomplete (SG-3): missing " + ", ".join(missing))
    unencodable: dict[str, list[str]] = {}
    # Every version is tried as it will be sent: the main one with the list's language, each
    # language's with its own (the footer and the document's language, MH-1).
    versions: list[tuple[str, str | None, Template | None]] = [("", None, template)]
    for variant in variants:
        versions.append(
            (
                f"variants.{variant.language}: ",
                variant.language,
                await session.get(Template, variant.template_id),
            )
        )
    for label, language, version in versions:
        if version is None:
            reasons.append(f"{label}template: it no longer exists")
            continue

        def try_template(
            version: Template = version, language: str | None = language
        ) -> dict[str, list[str]]:
            composer = CampaignComposer.build(
                subject=version.subject,
                html=version.html,
                text=version.text,
                sender=SenderIdentity.of(sender),
                mailing_list=ListIdentity.of(mailing_list),
                settings=settings,
                language=language,
            )
            sample = sample_recipient(settings)
            composer.compose(sample)
            if mailing_list.charset != Charset.ISO_2022_JP:
                return {}
            return _not_in_iso2022jp(composer, sample, sender, mailing_list)

        try:
            # CPU work of up to about a second for a template at the sandbox's limits: off the
            # event loop, so other requests are not held meanwhile (DS-6).
            found = await asyncio.to_thread(try_template)
        except AppError as exc:
            reasons.append(f"{label}template does not render: {exc.detail}")
            continue
        except Exception as exc:  # a template error of any kind is a preflight reason
            reasons.append(f"{label}template does not render: {type(exc).__name__}: {exc}")
            continue
        for where, characters in found.items():
            if label and where in ("sender identity", "list name"):
                continue  # the same in every version: named once, for the main one
            unencodable[f"{label}{where}"] = characters
    for where, characters in unencodable.items():
        reasons.append(
            f"{where}: ISO-2022-JP, the list's charset, cannot carry "
            f"{iso2022jp.describe(characters)}; replace them, or set the list's charset to utf-8"
        )
    warnings = _dkim_check(settings, sender, reasons)
    if await deliveries.count_mailable(session, campaign) == 0:
        reasons.append("the list has no recipient who may be mailed now (SG-1)")
    if reasons:
        extra: dict[str, object] = {"reasons": reasons}
        if unencodable:
            extra["unencodable"] = unencodable
        raise PreflightFailed("The campaign cannot be sent: " + "; ".join(reasons), extra=extra)
    assert template is not None
    now = utcnow()
    # The copies that go out: later edits of the templates cannot change the campaign.
    campaign.subject, campaign.html, campaign.text = template.subject, template.html, template.text
    for variant, (_label, _language, version) in zip(variants, versions[1:], strict=True):
        assert version is not None
        variant.subject, variant.html, variant.text = version.subject, version.html, version.text
    if campaign.scheduled_at is not None and campaign.scheduled_at > now:
        campaign.status = CampaignStatus.SCHEDULED
    else:
        campaign.status = CampaignStatus.SENDING
        campaign.started_at = now
    campaign.updated_at = now
    await session.flush()
    await record_audit(
        session, principal, "campaign.send", "campaign", campaign.id, {"status": campaign.status}
    )
    return Started(campaign, dispatch=campaign.status == CampaignStatus.SENDING, warnings=warnings)


def _not_in_iso2022jp(
    composer: CampaignComposer, sample: Recipient, sender: Sender, mailing_list: MailingList
) -> dict[str, list[str]]:
    """The characters ISO-2022-JP cannot carry, by where they are: the subject and the template
    as rendered for the sample recipient, the sender's identity (the From name and the legal
    footer, MH-1), the list's name (List-Id and the footer).

    A refusal, not a warning: the list promises its readers ISO-2022-JP, and such a character,
    the same in every message, would send every message in UTF-8 instead. Characters with a JIS
    twin (～, half-width kana) are mended, not named. A recipient's own data (a name with 髙)
    cannot be checked here: that one message goes out in UTF-8."""
    output = composer.template_output(sample)
    identity = (
        sender.from_name,
        sender.name,
        sender.responsible_person,
        sender.postal_address,
        sender.contact_email,
        sender.contact_phone,
        sender.contact_url,
    )
    places = {
        "subject": output.subject,
        "template": f"{output.text}\n{output.html}",
        "sender identity": "\n".join(value for value in identity if value),
        "list name": mailing_list.name,
    }
    found = {where: iso2022jp.unencodable(text) for where, text in places.items()}
    return {where: characters for where, characters in found.items() if characters}


def _dkim_check(settings: Settings, sender: Sender, reasons: list[str]) -> list[str]:
    """MH-3 and DMARC alignment: whether the sender's From domain has a DKIM key. Without one
    the mail goes out unsigned: a reason to refuse where signing is required, else a warning."""
    from app.mail.dkim import DkimConfigError, DkimKeyring
    from app.mail.identity import SenderIdentity

    domain = SenderIdentity.of(sender).domain
    try:
        keyring = DkimKeyring.from_settings(settings)
    except DkimConfigError as exc:
        reasons.append(f"DKIM: {exc}")
        return []
    if keyring.for_domain(domain) is not None:
        return []
    problem = (
        f"no DKIM key for the sender's From domain {domain}: its messages would go out "
        "unsigned, which DMARC receivers may reject (set SHODAKU_DKIM_KEYS)"
    )
    if settings.dkim_required:
        reasons.append(problem + "; SHODAKU_DKIM_REQUIRED is on")
        return []
    return [problem]


async def pause_campaign(session: AsyncSession, principal: Principal, campaign_id: int) -> Campaign:
    """Pause stops new claims at once; deliveries a worker holds go back to the queue at their
    send window, so nothing new starts after the pause is answered."""
    campaign = await _get(session, campaign_id, principal.senders, for_update=True)
    if campaign.status not in (CampaignStatus.SENDING, CampaignStatus.SCHEDULED):
        raise Conflict(
            f"The campaign is {campaign.status}; only a sending or scheduled one pauses."
        )
    campaign.status = CampaignStatus.PAUSED
    campaign.updated_at = utcnow()
    await record_audit(session, principal, "campaign.pause", "campaign", campaign.id)
    return campaign


async def pause_for_complaints(session: AsyncSession, campaign_id: int) -> bool:
    """SG-5: a sending (or scheduled) campaign whose complaint rate passes 0.3% of the
    messages sent pauses itself, audited as the system's own act; whether it paused now. A
    marketer who has looked into it resumes it."""
    campaign = await session.get(Campaign, campaign_id, with_for_update=True)
    if campaign is None or campaign.status not in (
        CampaignStatus.SENDING,
        CampaignStatus.SCHEDULED,
    ):
        return False
    stats = await deliveries.delivery_stats(session, campaign_id)
    rate = float(stats["complaint_rate"])
    if rate <= deliveries.COMPLAINT_RATE_PAUSE:
        return False
    campaign.status = CampaignStatus.PAUSED
    campaign.updated_at = utcnow()
    await record_audit(
        session,
        None,
        "campaign.pause",
        "campaign",
        campaign.id,
        {"reason": "complaint_rate", "complaint_rate": rate, "complaints": stats["complaints"]},
    )
    log.warning("campaign %s paused itself: complaint rate %.4f", campaign.id, rate)
    return True


async def resume_campaign(session: AsyncSession, principal: Principal, campaign_id: int) -> Started:
    """Continue where the delivery ledger says: nothing sent is sent again."""
    campaign = await _get(session, campaign_id, principal.senders, for_update=True)
    if campaign.status != CampaignStatus.PAUSED:
        raise Conflict(f"The campaign is {campaign.status}; only a paused one resumes.")
    now = utcnow()
    if campaign.started_at is None and campaign.scheduled_at and campaign.scheduled_at > now:
        campaign.status = CampaignStatus.SCHEDULED
    else:
        campaign.status = CampaignStatus.SENDING
        campaign.started_at = campaign.started_at or now
    campaign.updated_at = now
    await record_audit(session, principal, "campaign.resume", "campaign", campaign.id)
    return Started(campaign, dispatch=campaign.status == CampaignStatus.SENDING)


async def cancel_campaign(
    session: AsyncSession, principal: Principal, campaign_id: int
) -> Campaign:
    """Cancel: every delivery not yet handed to SMTP is cancelled in the same transaction."""
    campaign = await _get(session, campaign_id, principal.senders, for_update=True)
    if campaign.status in (CampaignStatus.SENT, CampaignStatus.CANCELLED):
        raise Conflict(f"The campaign is already {campaign.status}.")
    campaign.status = CampaignStatus.CANCELLED
    now = utcnow()
    campaign.finished_at = now
    campaign.updated_at = now
    cancelled = await deliveries.cancel_all_queued(session, campaign.id)
    await record_audit(
        session, principal, "campaign.cancel", "campaign", campaign.id, {"cancelled": cancelled}
    )
    return campaign


async def start_due_scheduled(session: AsyncSession, now: datetime | None = None) -> list[int]:
    """Scheduled campaigns whose time has come start sending; returns their ids."""
    now = now or utcnow()
    stmt = select(Campaign).where(
        Campaign.status == CampaignStatus.SCHEDULED, Campaign.scheduled_at <= now
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    started = []
    for campaign in (await session.scalars(stmt)).all():
        sender = await session.get(Sender, campaign.sender_id)
        if sender is None or missing_identity(sender):
            # SG-3 again at the moment it starts: the sender may have changed since the
            # preflight. It waits, paused, for someone to complete the identity and resume.
            log.warning("scheduled campaign %s paused: sender identity incomplete", campaign.id)
            campaign.status = CampaignStatus.PAUSED
            campaign.updated_at = now
            continue
        campaign.status = CampaignStatus.SENDING
        campaign.started_at = now
        campaign.updated_at = now
        started.append(campaign.id)
    return started
