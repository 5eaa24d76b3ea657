"""The consent ledger and opt-out, tested at the service layer (CR-1, SG-2, OO-3, OO-5, OO-6,
DS-3): what each event records, that no event ever changes, and what an opt-out does in its
one unit of work."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text

from app.models import (
    Campaign,
    ConsentEvent,
    ConsentText,
    Delivery,
    Subscriber,
    Subscription,
    Suppression,
    Template,
)
from app.models.enums import (
    CampaignStatus,
    ConsentEventKind,
    ConsentMethod,
    DeliveryStatus,
    LegalBasis,
    SubscriptionStatus,
    SuppressionReason,
    SuppressionScope,
)
from app.runtime import Runtime
from app.sending.bounces import record_hard_bounce
from app.subscriptions import repository as repo
from app.subscriptions import service
from app.subscriptions.repository import GateVerdict
from app.subscriptions.service import (
    AddressSuppressed,
    OptOutOutcome,
    RequestOrigin,
    SignupResult,
    UnsubscribeScope,
)
from tests.subscriptions.world import CONSENT_TEXT, WEB, World

AIKO = "aiko@example.jp"
BEN = "ben@example.com"
CONFIRM_ORIGIN = RequestOrigin(ip="198.51.100.23", user_agent="MailApp/2.0 (phone)")
JST = timezone(timedelta(hours=9))


# --- doing things, one unit of work each, as a request would ----------------------------------


async def signup(
    runtime: Runtime,
    world: World,
    email: str,
    lst: str = "doi",
    *,
    wording: str = CONSENT_TEXT,
) -> service.SignupOutcome:
    mailing_list = {"doi": world.doi_list, "soi": world.soi_list, "other": world.other_list}[lst]
    async with runtime.sessionmaker() as session, session.begin():
        return await service.subscribe(
            session,
            world.hasher,
            mailing_list=mailing_list,
            email=email,
            name=None,
            consent_text=wording,
            method=ConsentMethod.WEB_FORM,
            origin=WEB,
        )


async def latest_grant_id(runtime: Runtime, email: str, list_id: int) -> int:
    async with runtime.sessionmaker() as session:
        grant_id = await session.scalar(
            select(func.max(ConsentEvent.id)).where(
                ConsentEvent.email == email,
                ConsentEvent.list_id == list_id,
                ConsentEvent.kind == ConsentEventKind.GRANT,
            )
        )
    assert grant_id is not None
    return grant_id


async def confirm_latest(runtime: Runtime, world: World, email: str, list_id: int) -> None:
    grant_id = await latest_grant_id(runtime, email, list_id)
    async with runtime.sessionmaker() as session, session.begin():
        await service.confirm(session, world.hasher, grant_event_id=grant_id, origin=CONFIRM_ORIGIN)


async def admin_consent(
    runtime: Runtime, world: World, email: str, list_id: int, **overrides: Any
) -> service.RecordedConsent:
    arguments: dict[str, Any] = {
        "list_id": list_id,
        "email": email,
        "basis": LegalBasis.BUSINESS_RELATIONSHIP,
        "method": ConsentMethod.API,
        "obtained_at": datetime(2026, 4, 1, 10, 30, tzinfo=JST),
        "evidence": {"transaction_reference": "ORD-1042", "transaction_date": "2026-04-01"},
        "consent_text": None,
        "origin": RequestOrigin(ip="198.51.100.2", user_agent="crm-sync/1.4"),
        "recorded_by": "api_key:7",
    } | overrides
    async with runtime.sessionmaker() as session, session.begin():
        return await service.record_consent(session, world.hasher, **arguments)


async def phone_optout(
    runtime: Runtime, world: World, email: str, *, sender_id: int, list_id: int | None
) -> OptOutOutcome:
    async with runtime.sessionmaker() as session, session.begin():
        return await service.record_optout(
            session,
            world.hasher,
            email=email,
            sender_id=sender_id,
            list_id=list_id,
            method=ConsentMethod.PHONE,
            reason=SuppressionReason.OPTOUT_REQUEST,
            recorded_by="api_key:7",
            channel="phone",
            note="Called the support line",
        )


async def unsubscribe(
    runtime: Runtime, world: World, token: str, scope: UnsubscribeScope
) -> tuple[service.UnsubscribeTarget, OptOutOutcome]:
    async with runtime.sessionmaker() as session, session.begin():
        return await service.unsubscribe_by_token(
            session,
            world.hasher,
            claim=runtime.signer.read_unsubscribe(token),
            scope=scope,
            method=ConsentMethod.ONE_CLICK,
            origin=WEB,
        )


# --- reading back, in a fresh session -------------------------------------------------------


async def subscriber_id(runtime: Runtime, email: str) -> int:
    async with runtime.sessionmaker() as session:
        found = await session.scalar(select(Subscriber.id).where(Subscriber.email == email))
    assert found is not None
    return found


async def events(runtime: Runtime) -> list[ConsentEvent]:
    async with runtime.sessionmaker() as session:
        return list((await session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))).all())


async def raw_ledger(runtime: Runtime) -> list[tuple[Any, ...]]:
    """Every event row exactly as the database driver returns it, no ORM type in between."""
    async with runtime.sessionmaker() as session:
        rows = await session.execute(text("SELECT * FROM consent_events ORDER BY id"))
        return [tuple(row) for row in rows]


async def status_of(runtime: Runtime, email: str, list_id: int) -> str | None:
    async with runtime.sessionmaker() as session:
        return await session.scalar(
            select(Subscription.status)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(Subscriber.email == email, Subscription.list_id == list_id)
        )


async def gate(runtime: Runtime, email: str, list_id: int) -> GateVerdict:
    async with runtime.sessionmaker() as session:
        sid = await session.scalar(select(Subscriber.id).where(Subscriber.email == email))
        assert sid is not None
        return (await repo.check_gate(session, sid, list_id)).verdict


async def suppressions(runtime: Runtime) -> set[tuple[str, str, int]]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            select(Suppression.address_hash, Suppression.scope, Suppression.scope_ref)
        )
        return {(address_hash, scope, ref) for address_hash, scope, ref in rows}


def assert_utc(moment: datetime | None) -> datetime:
    assert moment is not None
    assert moment.utcoffset() == timedelta(0), moment
    return moment


# --- CR-1: what an event records ------------------------------------------------------------


async def test_cr1_web_signup_and_its_confirmation_record_the_full_evidence(
    runtime: Runtime, world: World
) -> None:
    """CR-1: the grant of a web signup and its confirmation record address, sender, list,
    basis, method, time (UTC), source URL, IP, user agent, the hash of the exact wording (the
    wording itself stored under that hash), the purpose, the double opt-in requested and
    confirmed times, and who recorded them."""
    before = datetime.now(UTC)
    outcome = await signup(runtime, world, AIKO)
    assert outcome.result is SignupResult.PENDING
    await confirm_latest(runtime, world, AIKO, world.doi_list.id)
    after = datetime.now(UTC)

    grant, confirmation = await events(runtime)
    aiko_id = await subscriber_id(runtime, AIKO)
    wording_hash = hashlib.sha256(CONSENT_TEXT.encode()).hexdigest()

    assert grant.kind == ConsentEventKind.GRANT
    assert (grant.email, grant.subscriber_id) == (AIKO, aiko_id)
    assert (grant.sender_id, grant.list_id) == (world.shop_id, world.doi_list.id)
    assert (grant.basis, grant.method) == (LegalBasis.OPT_IN, ConsentMethod.WEB_FORM)
    assert before <= assert_utc(grant.occurred_at) <= after
    assert assert_utc(grant.obtained_at) == grant.occurred_at
    assert (grant.source_url, grant.ip, grant.user_agent) == (
        WEB.source_url,
        WEB.ip,
        WEB.user_agent,
    )
    assert grant.consent_text_hash == wording_hash
    assert grant.purpose == world.doi_list.purpose
    assert assert_utc(grant.double_opt_in_requested_at) == grant.occurred_at
    assert grant.confirmed_at is None
    assert grant.recorded_by == "subject"

    assert confirmation.kind == ConsentEventKind.CONFIRM
    assert (confirmation.email, confirmation.subscriber_id) == (AIKO, aiko_id)
    assert (confirmation.sender_id, confirmation.list_id) == (world.shop_id, world.doi_list.id)
    assert (confirmation.basis, confirmation.method) == (grant.basis, grant.method)
    # The confirming click is evidence of its own: its IP and user agent, not the signup's.
    assert (confirmation.ip, confirmation.user_agent) == (
        CONFIRM_ORIGIN.ip,
        CONFIRM_ORIGIN.user_agent,
    )
    assert confirmation.consent_text_hash == wording_hash
    assert confirmation.double_opt_in_requested_at == grant.double_opt_in_requested_at
    assert grant.occurred_at <= assert_utc(confirmation.confirmed_at) <= after
    assert assert_utc(confirmation.occurred_at) == confirmation.confirmed_at
    # The request confirmed, and that its wording was shown (in the mail, on the page).
    assert confirmation.evidence == {
        "grant_event_id": grant.id,
        "wording_shown_at_confirmation": True,
        "wording_quoted_in_mail": True,
    }
    assert confirmation.recorded_by == "subject"

    async with runtime.sessionmaker() as session:
        stored = await session.get(ConsentText, wording_hash)
    assert stored is not None
    assert stored.text == CONSENT_TEXT


async def test_cr1_recorded_consent_keeps_basis_evidence_time_and_recorder(
    runtime: Runtime, world: World
) -> None:
    """CR-1, CC-4: consent an operator records carries its basis, method, the moment it was
    obtained (normalised to UTC), the evidence, the wording, the origin and the API key that
    recorded it; no double opt-in times, since none was asked."""
    wording = "名刺交換の際、メールマガジンの送付に同意しました。"
    obtained = datetime(2026, 4, 1, 10, 30, tzinfo=JST)
    await admin_consent(
        runtime,
        world,
        BEN,
        world.soi_list.id,
        basis=LegalBasis.WRITTEN_NOTICE,
        method=ConsentMethod.BUSINESS_CARD,
        obtained_at=obtained,
        evidence={"received_by": "Sato", "card_reference": "card-2026-0412"},
        consent_text=wording,
    )

    (event,) = await events(runtime)
    assert event.kind == ConsentEventKind.GRANT
    assert (event.email, event.sender_id, event.list_id) == (BEN, world.shop_id, world.soi_list.id)
    assert (event.basis, event.method) == (LegalBasis.WRITTEN_NOTICE, ConsentMethod.BUSINESS_CARD)
    # The same instant, read back in UTC: 10:30 in Tokyo is 01:30 UTC.
    obtained_utc = assert_utc(event.obtained_at)
    assert obtained_utc == obtained
    assert (obtained_utc.hour, obtained_utc.minute) == (1, 30)
    assert_utc(event.occurred_at)
    assert event.evidence == {"received_by": "Sato", "card_reference": "card-2026-0412"}
    assert event.consent_text_hash == hashlib.sha256(wording.encode()).hexdigest()
    assert (event.ip, event.user_agent) == ("198.51.100.2", "crm-sync/1.4")
    assert event.recorded_by == "api_key:7"
    assert (event.double_opt_in_requested_at, event.confirmed_at) == (None, None)
    assert await gate(runtime, BEN, world.soi_list.id) is GateVerdict.MAILABLE


async def test_cr1_each_wording_is_stored_once(runtime: Runtime, world: World) -> None:
    """CR-1: two people shown the same wording share one stored text, referenced by its hash;
    a wording differing by a single character is a new version, stored beside it."""
    await signup(runtime, world, AIKO)
    await signup(runtime, world, BEN, "soi")
    changed = CONSENT_TEXT.replace("newsletter", "newsletters")
    await signup(runtime, world, "chika@example.net", wording=changed)

    async with runtime.sessionmaker() as session:
        texts = {row.hash: row.text for row in (await session.scalars(select(ConsentText))).all()}
    aiko_grant, ben_grant, chika_grant = await events(runtime)
    assert texts == {
        hashlib.sha256(CONSENT_TEXT.encode()).hexdigest(): CONSENT_TEXT,
        hashlib.sha256(changed.encode()).hexdigest(): changed,
    }
    assert aiko_grant.consent_text_hash == ben_grant.consent_text_hash
    assert chika_grant.consent_text_hash != aiko_grant.consent_text_hash


async def test_cr1_ledger_is_append_only_through_withdrawal_and_renewed_consent(
    runtime: Runtime, world: World
) -> None:
    """CR-1: grant, confirm, withdraw, grant again, confirm again: five events, and every event
    row reads back exactly as it was written, whatever happened after it."""
    list_id = world.doi_list.id
    snapshots: list[list[tuple[Any, ...]]] = []

    await signup(runtime, world, AIKO)
    snapshots.append(await raw_ledger(runtime))
    await confirm_latest(runtime, world, AIKO, list_id)
    snapshots.append(await raw_ledger(runtime))
    token = runtime.signer.unsubscribe_token(
        await subscriber_id(runtime, AIKO), list_id, world.hasher(AIKO)
    )
    await unsubscribe(runtime, world, token, UnsubscribeScope.LIST)
    snapshots.append(await raw_ledger(runtime))
    assert (await signup(runtime, world, AIKO)).result is SignupResult.PENDING
    snapshots.append(await raw_ledger(runtime))
    await confirm_latest(runtime, world, AIKO, list_id)
    final = await raw_ledger(runtime)

    assert [e.kind for e in await events(runtime)] == [
        ConsentEventKind.GRANT,
        ConsentEventKind.CONFIRM,
        ConsentEventKind.WITHDRAW,
        ConsentEventKind.GRANT,
        ConsentEventKind.CONFIRM,
    ]
    for number, snapshot in enumerate(snapshots, 1):
        assert len(snapshot) == number
        assert final[:number] == snapshot, f"an event changed after step {number}"
    assert await gate(runtime, AIKO, list_id) is GateVerdict.MAILABLE


# --- SG-2: an opt-out cancels what is waiting to be sent, in its own unit of work ------------


async def make_campaign(runtime: Runtime, list_id: int, sender_id: int, name: str) -> int:
    async with runtime.sessionmaker() as session, session.begin():
        template = Template(name=name, subject="News", html="<p>News</p>", text="News")
        session.add(template)
        await session.flush()
        campaign = Campaign(
            name=name,
            list_id=list_id,
            template_id=template.id,
            sender_id=sender_id,
            status=CampaignStatus.SENDING,
        )
        session.add(campaign)
        await session.flush()
        return campaign.id


async def add_delivery(runtime: Runtime, campaign_id: int, email: str, status: str) -> int:
    sid = await subscriber_id(runtime, email)
    async with runtime.sessionmaker() as session, session.begin():
        now = datetime.now(UTC)
        delivery = Delivery(
            campaign_id=campaign_id,
            subscriber_id=sid,
            status=status,
            lease_expires_at=now + timedelta(minutes=5) if status == "sending" else None,
            sent_at=now if status == DeliveryStatus.SENT else None,
        )
        session.add(delivery)
        await session.flush()
        return delivery.id


async def delivery_statuses(runtime: Runtime) -> dict[int, str]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(select(Delivery.id, Delivery.status))
        return {delivery_id: status for delivery_id, status in rows}


@pytest.fixture
async def mailbox(runtime: Runtime, world: World) -> dict[str, int]:
    """Aiko and Ben on every list, with deliveries of five campaigns in various states:
    Aiko has mail queued, being sent, in flight and sent from the shop, and mail queued from
    the other sender; Ben has mail queued from the shop."""
    for email in (AIKO, BEN):
        for mailing_list in world.lists:
            await admin_consent(runtime, world, email, mailing_list.id)
    weekly_1 = await make_campaign(runtime, world.doi_list.id, world.shop_id, "weekly 1")
    weekly_2 = await make_campaign(runtime, world.doi_list.id, world.shop_id, "weekly 2")
    flash_1 = await make_campaign(runtime, world.soi_list.id, world.shop_id, "flash 1")
    flash_2 = await make_campaign(runtime, world.soi_list.id, world.shop_id, "flash 2")
    other = await make_campaign(runtime, world.other_list.id, world.other_id, "other")
    return {
        "aiko weekly queued": await add_delivery(runtime, weekly_1, AIKO, DeliveryStatus.QUEUED),
        "aiko weekly sending": await add_delivery(runtime, weekly_2, AIKO, DeliveryStatus.SENDING),
        "aiko flash queued": await add_delivery(runtime, flash_1, AIKO, DeliveryStatus.QUEUED),
        "aiko flash sent": await add_delivery(runtime, flash_2, AIKO, DeliveryStatus.SENT),
        "aiko other queued": await add_delivery(runtime, other, AIKO, DeliveryStatus.QUEUED),
        "ben weekly queued": await add_delivery(runtime, weekly_1, BEN, DeliveryStatus.QUEUED),
        "ben flash in flight": await add_delivery(runtime, flash_1, BEN, DeliveryStatus.IN_FLIGHT),
    }


async def test_sg2_sender_optout_cancels_the_addresses_waiting_mail_of_that_sender_only(
    runtime: Runtime, world: World, mailbox: dict[str, int]
) -> None:
    """SG-2, OO-5: an opt-out from the whole sender cancels that address's queued and claimed
    deliveries of every list of the sender; a sent message stays sent, and neither another
    person's mail nor another sender's is touched."""
    outcome = await phone_optout(runtime, world, AIKO, sender_id=world.shop_id, list_id=None)

    assert outcome.cancelled_deliveries == 3
    statuses = await delivery_statuses(runtime)
    assert {name: statuses[delivery] for name, delivery in mailbox.items()} == {
        "aiko weekly queued": DeliveryStatus.CANCELLED,
        "aiko weekly sending": DeliveryStatus.CANCELLED,
        "aiko flash queued": DeliveryStatus.CANCELLED,
        "aiko flash sent": DeliveryStatus.SENT,
        "aiko other queued": DeliveryStatus.QUEUED,
        "ben weekly queued": DeliveryStatus.QUEUED,
        "ben flash in flight": DeliveryStatus.IN_FLIGHT,
    }
    async with runtime.sessionmaker() as session:
        lease = await session.scalar(
            select(Delivery.lease_expires_at).where(Delivery.id == mailbox["aiko weekly sending"])
        )
    assert lease is None  # a worker holding the claim cannot renew what is cancelled


async def test_sg2_list_optout_cancels_only_that_lists_waiting_mail(
    runtime: Runtime, world: World, mailbox: dict[str, int]
) -> None:
    """SG-2, OO-5: "this list only" from the unsubscribe link cancels the waiting mail of that
    list and leaves the sender's other list alone."""
    token = runtime.signer.unsubscribe_token(
        await subscriber_id(runtime, AIKO), world.doi_list.id, world.hasher(AIKO)
    )
    _target, outcome = await unsubscribe(runtime, world, token, UnsubscribeScope.LIST)

    assert outcome.cancelled_deliveries == 2
    statuses = await delivery_statuses(runtime)
    assert statuses[mailbox["aiko weekly queued"]] == DeliveryStatus.CANCELLED
    assert statuses[mailbox["aiko weekly sending"]] == DeliveryStatus.CANCELLED
    assert statuses[mailbox["aiko flash queued"]] == DeliveryStatus.QUEUED
    assert statuses[mailbox["aiko other queued"]] == DeliveryStatus.QUEUED
    assert statuses[mailbox["ben weekly queued"]] == DeliveryStatus.QUEUED
    assert await gate(runtime, AIKO, world.doi_list.id) is GateVerdict.SUPPRESSED
    assert await gate(runtime, AIKO, world.soi_list.id) is GateVerdict.MAILABLE


async def test_sg2_cancellation_is_part_of_the_optouts_unit_of_work(
    runtime: Runtime, world: World, mailbox: dict[str, int]
) -> None:
    """SG-2: the withdrawal, the unsubscription, the suppression and the cancellations are
    written in the caller's one transaction: rolled back, none of them happened; committed,
    all of them did."""

    async with runtime.sessionmaker() as session:
        outcome = await service.record_optout(
            session,
            world.hasher,
            email=AIKO,
            sender_id=world.shop_id,
            list_id=None,
            method=ConsentMethod.PHONE,
            reason=SuppressionReason.OPTOUT_REQUEST,
            recorded_by="api_key:7",
        )
        assert outcome.cancelled_deliveries == 3  # done, but not yet committed
        await session.rollback()
    statuses = await delivery_statuses(runtime)
    assert statuses[mailbox["aiko weekly queued"]] == DeliveryStatus.QUEUED
    assert await suppressions(runtime) == set()
    assert ConsentEventKind.WITHDRAW not in {e.kind for e in await events(runtime)}
    assert await status_of(runtime, AIKO, world.doi_list.id) == SubscriptionStatus.ACTIVE

    await phone_optout(runtime, world, AIKO, sender_id=world.shop_id, list_id=None)
    statuses = await delivery_statuses(runtime)
    assert statuses[mailbox["aiko weekly queued"]] == DeliveryStatus.CANCELLED
    assert await suppressions(runtime) == {
        (world.hasher(AIKO), SuppressionScope.SENDER, world.shop_id)
    }
    assert await status_of(runtime, AIKO, world.doi_list.id) == SubscriptionStatus.UNSUBSCRIBED


# --- OO-3, OO-5, OO-6 ------------------------------------------------------------------------


async def test_oo3_a_repeated_optout_appends_nothing(runtime: Runtime, world: World) -> None:
    """OO-3: the same opt-out twice (a double click, a link scanner's retry, a second call)
    answers unchanged and writes no second event or suppression."""
    await admin_consent(runtime, world, AIKO, world.doi_list.id)
    first = await phone_optout(runtime, world, AIKO, sender_id=world.shop_id, list_id=None)
    ledger, suppressed = await raw_ledger(runtime), await suppressions(runtime)

    again = await phone_optout(runtime, world, AIKO, sender_id=world.shop_id, list_id=None)
    token = runtime.signer.unsubscribe_token(
        await subscriber_id(runtime, AIKO), world.doi_list.id, world.hasher(AIKO)
    )
    _target, by_link = await unsubscribe(runtime, world, token, UnsubscribeScope.SENDER)

    assert first.changed
    assert first.unsubscribed_list_ids == [world.doi_list.id]
    assert (again.changed, again.event_ids) == (False, [])
    assert (by_link.changed, by_link.event_ids) == (False, [])
    assert await raw_ledger(runtime) == ledger
    assert await suppressions(runtime) == suppressed


async def test_oo5_sender_optout_ends_every_list_of_that_sender_and_no_other(
    runtime: Runtime, world: World
) -> None:
    """OO-5: unsubscribing from every list of the sender (the default choice on the page)
    unsubscribes each of that sender's lists and suppresses the address for the sender; the
    other sender's list is not theirs to end."""
    for mailing_list in world.lists:
        await admin_consent(runtime, world, AIKO, mailing_list.id)
    token = runtime.signer.unsubscribe_token(
        await subscriber_id(runtime, AIKO), world.doi_list.id, world.hasher(AIKO)
    )
    _target, outcome = await unsubscribe(runtime, world, token, UnsubscribeScope.SENDER)

    assert sorted(outcome.unsubscribed_list_ids) == sorted([world.doi_list.id, world.soi_list.id])
    for mailing_list in (world.doi_list, world.soi_list):
        assert await status_of(runtime, AIKO, mailing_list.id) == SubscriptionStatus.UNSUBSCRIBED
        assert await gate(runtime, AIKO, mailing_list.id) is GateVerdict.SUPPRESSED
    assert await status_of(runtime, AIKO, world.other_list.id) == SubscriptionStatus.ACTIVE
    assert await gate(runtime, AIKO, world.other_list.id) is GateVerdict.MAILABLE
    assert await suppressions(runtime) == {
        (world.hasher(AIKO), SuppressionScope.SENDER, world.shop_id)
    }
    withdrawal = (await events(runtime))[-1]
    assert (withdrawal.kind, withdrawal.sender_id, withdrawal.list_id, withdrawal.scope) == (
        ConsentEventKind.WITHDRAW,
        world.shop_id,
        None,
        SuppressionScope.SENDER,
    )
    assert (withdrawal.method, withdrawal.recorded_by) == (ConsentMethod.ONE_CLICK, "subject")


async def test_oo6_admin_consent_never_lifts_an_optout(runtime: Runtime, world: World) -> None:
    """OO-6: after an opt-out, consent recorded through the admin API is refused and changes
    nothing, for a known subscriber and for an address that opted out before ever being one;
    only the person's own signup, once confirmed, lifts the suppression, and only for the list
    confirmed: the sender's other list stays suppressed."""
    await admin_consent(runtime, world, AIKO, world.soi_list.id)
    await phone_optout(runtime, world, AIKO, sender_id=world.shop_id, list_id=None)
    await phone_optout(runtime, world, BEN, sender_id=world.shop_id, list_id=world.soi_list.id)
    ledger, suppressed = await raw_ledger(runtime), await suppressions(runtime)

    with pytest.raises(AddressSuppressed):
        await admin_consent(runtime, world, AIKO, world.soi_list.id)
    with pytest.raises(AddressSuppressed):
        await admin_consent(runtime, world, AIKO, world.doi_list.id)  # the whole sender
    with pytest.raises(AddressSuppressed):
        await admin_consent(runtime, world, BEN, world.soi_list.id)

    assert await raw_ledger(runtime) == ledger
    assert await suppressions(runtime) == suppressed
    assert await status_of(runtime, AIKO, world.soi_list.id) == SubscriptionStatus.UNSUBSCRIBED
    assert await gate(runtime, AIKO, world.soi_list.id) is GateVerdict.SUPPRESSED
    async with runtime.sessionmaker() as session:
        ben = await session.scalar(select(Subscriber).where(Subscriber.email == BEN))
    assert ben is None  # a refused consent leaves no profile behind either

    # Ben opted out of one list only: the shop's other list may still record his consent.
    await admin_consent(runtime, world, BEN, world.doi_list.id)
    assert await gate(runtime, BEN, world.doi_list.id) is GateVerdict.MAILABLE

    # Aiko's own signup on the single opt-in list must be confirmed, and then it lifts it.
    assert (await signup(runtime, world, AIKO, "soi")).result is SignupResult.PENDING
    assert await gate(runtime, AIKO, world.soi_list.id) is GateVerdict.SUPPRESSED
    await confirm_latest(runtime, world, AIKO, world.soi_list.id)
    assert await gate(runtime, AIKO, world.soi_list.id) is GateVerdict.MAILABLE
    # OO-6: the sender-wide suppression stays, set aside for the confirmed list alone.
    assert await suppressions(runtime) == {
        (world.hasher(AIKO), SuppressionScope.SENDER, world.shop_id),
        (world.hasher(BEN), SuppressionScope.LIST, world.soi_list.id),
    }
    with pytest.raises(AddressSuppressed):
        await admin_consent(runtime, world, AIKO, world.doi_list.id)


async def test_oo6_after_a_hard_bounce_the_persons_own_signup_is_the_way_back(
    runtime: Runtime, world: World
) -> None:
    """OO-6, SG-4: a hard bounce suppresses the address everywhere but leaves the subscription
    active. Signing up again must not answer "already subscribed" and send nothing: it asks for
    confirmation, and the confirmation makes the address mailable again on that list, and on no
    other list of any sender."""
    await admin_consent(runtime, world, AIKO, world.soi_list.id)
    aiko_id = await subscriber_id(runtime, AIKO)
    async with runtime.sessionmaker() as session, session.begin():
        await record_hard_bounce(session, subscriber_id=aiko_id, address_hash=world.hasher(AIKO))
    assert await gate(runtime, AIKO, world.soi_list.id) is GateVerdict.SUPPRESSED

    outcome = await signup(runtime, world, AIKO, "soi")
    assert outcome.result is SignupResult.PENDING
    assert outcome.outbox_id is not None  # a confirmation mail is on its way
    assert await gate(runtime, AIKO, world.soi_list.id) is GateVerdict.SUPPRESSED

    await confirm_latest(runtime, world, AIKO, world.soi_list.id)
    assert await gate(runtime, AIKO, world.soi_list.id) is GateVerdict.MAILABLE
    assert await suppressions(runtime) == {(world.hasher(AIKO), SuppressionScope.GLOBAL, 0)}
    for other in (world.doi_list, world.other_list):
        with pytest.raises(AddressSuppressed):
            await admin_consent(runtime, world, AIKO, other.id)


# --- unsubscribe links and erasure ----------------------------------------------------------


async def test_oo1_an_unsubscribe_link_never_unsubscribes_whoever_now_holds_its_id(
    runtime: Runtime, world: World
) -> None:
    """OO-1, DS-3: a link names a subscriber id and a prefix of the address's keyed hash. Once
    that person is erased and the id belongs to someone else, their old link (or any link whose
    hash prefix does not match) changes nothing for the new holder; the holder's own link
    works."""
    await admin_consent(runtime, world, AIKO, world.soi_list.id)
    reused_id = await subscriber_id(runtime, AIKO)
    aikos_link = runtime.signer.unsubscribe_token(reused_id, world.soi_list.id, world.hasher(AIKO))
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(delete(Subscriber).where(Subscriber.id == reused_id))
        # SQLite hands out the highest id + 1 again; PostgreSQL's sequence would not, so the
        # re-use is made explicit to run the same case on both.
        session.add(Subscriber(id=reused_id, email=BEN, address_hash=world.hasher(BEN)))
    await admin_consent(runtime, world, BEN, world.soi_list.id)
    assert await subscriber_id(runtime, BEN) == reused_id
    ledger = await raw_ledger(runtime)

    forged = runtime.signer.unsubscribe_token(reused_id, world.soi_list.id, "0" * 64)
    for link in (aikos_link, forged):
        target, outcome = await unsubscribe(runtime, world, link, UnsubscribeScope.SENDER)
        assert target.subscriber is None
        assert not outcome.changed
    assert await raw_ledger(runtime) == ledger
    assert await suppressions(runtime) == set()
    assert await gate(runtime, BEN, world.soi_list.id) is GateVerdict.MAILABLE

    bens_link = runtime.signer.unsubscribe_token(reused_id, world.soi_list.id, world.hasher(BEN))
    _target, outcome = await unsubscribe(runtime, world, bens_link, UnsubscribeScope.LIST)
    assert outcome.changed
    assert await gate(runtime, BEN, world.soi_list.id) is GateVerdict.SUPPRESSED


async def test_ds3_consent_evidence_keeps_the_address_when_the_profile_is_deleted(
    runtime: Runtime, world: World
) -> None:
    """DS-3, CR-1: deleting a subscriber's profile removes their subscriptions but not the
    evidence: every grant, confirmation and withdrawal still names the address (only the link
    to the deleted row is cleared), and the hashed suppression still refuses the address."""
    await signup(runtime, world, AIKO)
    await confirm_latest(runtime, world, AIKO, world.doi_list.id)
    await phone_optout(runtime, world, AIKO, sender_id=world.shop_id, list_id=None)
    aiko_id = await subscriber_id(runtime, AIKO)
    link = runtime.signer.unsubscribe_token(aiko_id, world.doi_list.id, world.hasher(AIKO))
    before = await events(runtime)

    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(delete(Subscriber).where(Subscriber.id == aiko_id))

    after = await events(runtime)
    assert [(e.id, e.kind, e.email) for e in after] == [(e.id, e.kind, e.email) for e in before]
    assert {e.email for e in after} == {AIKO}
    assert {e.subscriber_id for e in before} == {aiko_id}
    assert {e.subscriber_id for e in after} == {None}
    async with runtime.sessionmaker() as session:
        remaining = await session.scalar(select(func.count()).select_from(Subscription))
        assert remaining == 0
        assert await repo.is_suppressed(
            session, world.hasher(AIKO), world.shop_id, world.soi_list.id
        )
    # The erased person's old link still answers, and writes nothing.
    target, outcome = await unsubscribe(runtime, world, link, UnsubscribeScope.SENDER)
    assert (target.subscriber, outcome.changed) == (None, False)
    with pytest.raises(AddressSuppressed):
        await admin_consent(runtime, world, AIKO, world.soi_list.id)
