"""What an imported address may receive (DS-4, CC-1, CC-4, SG-1, OO-6): only rows whose evidence
names this sender are mailable; the rest get nothing at all, not a campaign and not a request
to opt in; a suppression survives any import; a re-run adds no second person or subscription."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.models import ConsentEvent, Subscriber, Subscription, Suppression
from app.models.enums import SuppressionReason, SuppressionScope
from app.sending.runner import DeliveryRunner
from app.subscriptions.repository import GateVerdict
from tests.factories import FULL_EVIDENCE, create_list, gate, make_world, record_consent, signup
from tests.imports.conftest import counts, import_json, items_of, subscriber, transaction_consent


async def start_campaign(admin: Any, list_id: int, template_id: int) -> Any:
    created = await admin.post(
        "/campaigns", json={"name": "12月号", "list_id": list_id, "template_id": template_id}
    )
    assert created.status_code == 201, created.text
    return created.json()["id"], await admin.post(f"/campaigns/{created.json()['id']}/send")


async def test_ds4_unconsented_rows_get_no_mail_of_any_kind(
    app, admin, runtime, smtp_server, outbox
):
    """DS-4, SG-1: a purchased list alone cannot be mailed: no confirmation request is queued
    (a "please opt in" mail is itself a specified email) and a campaign to the list is refused,
    there being no one it may reach."""
    world = await make_world(runtime)
    rows = [{"email": f"bought{i}@example.jp", "name": f"購入{i}"} for i in range(5)]
    report = await import_json(admin, world.list_id, rows)
    assert (report["unconsented"], report["consented"]) == (5, 0)

    assert (await counts(runtime))["outbox_messages"] == 0
    run = await outbox()
    assert run.sent == 0
    for row in rows:
        person = await subscriber(runtime, row["email"])
        assert person is not None
        assert await gate(runtime, person.id, world.list_id) is GateVerdict.NO_CONSENT
    listed = await admin.get("/subscribers", params={"list_id": world.list_id, "status": "pending"})
    assert listed.json()["items"] == []  # not even a pending subscription a resend could pick

    _campaign_id, refused = await start_campaign(admin, world.list_id, world.template_id)
    assert refused.status_code == 409
    assert "no recipient who may be mailed" in refused.json()["detail"]
    assert smtp_server.received == []


async def test_ds4_cc4_consented_rows_are_mailed_and_unconsented_rows_of_the_same_import_are_not(
    app, admin, runtime, smtp_server, outbox
):
    """CC-1, CC-4, SG-1: the grant recorded for a row whose evidence names this sender has
    method ``import`` and names the import; the campaign reaches exactly those rows."""
    world = await make_world(runtime)
    rows = [
        {"email": "customer@example.jp", "consent": transaction_consent(world.sender_id)},
        {
            "email": "card@example.jp",
            "consent": {
                "basis": "written_notice",
                "method": "business_card",
                "obtained_at": "2026-06-01T10:00:00+09:00",
                "evidence": FULL_EVIDENCE["written_notice"],
                "sender_id": str(world.sender_id),
            },
        },
        {"email": "cold1@example.jp"},
        {"email": "cold2@example.jp", "consent": transaction_consent(world.sender_id + 1)},
    ]
    report = await import_json(admin, world.list_id, rows)
    assert (report["consented"], report["unconsented"]) == (2, 2)

    items = await items_of(runtime, report["import_id"])
    async with runtime.sessionmaker() as session:
        events = list((await session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))).all())
    assert [e.email for e in events] == ["customer@example.jp", "card@example.jp"]
    for event in events:
        assert (event.kind, event.method) == ("grant", "import")
        assert event.recorded_by == f"import:{report['import_id']}"
        assert event.list_id == world.list_id
        assert event.sender_id == world.sender_id
        assert items[event.email].consent_event_id == event.id
    assert events[1].basis == "written_notice"
    assert events[1].evidence["document_ref"] == FULL_EVIDENCE["written_notice"]["document_ref"]
    assert events[1].evidence["original_method"] == "business_card"

    campaign_id, started = await start_campaign(admin, world.list_id, world.template_id)
    assert started.status_code == 202, started.text
    await DeliveryRunner(runtime, app.state.transport, worker_id="t").drain(campaign_id)
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == [
        "card@example.jp",
        "customer@example.jp",
    ]
    deliveries = (await admin.get(f"/campaigns/{campaign_id}/deliveries")).json()["items"]
    assert {d["email"]: d["consent_event_id"] for d in deliveries} == {
        e.email: e.id for e in events
    }
    assert (await outbox()).sent == 0  # and no confirmation request to anyone


async def test_oo6_a_suppressed_address_stays_suppressed_even_with_consent_evidence(
    admin, runtime, sender, news
):
    """OO-6: an opt-out (list or sender scope) or an erasure's suppression is reported by the
    import and nothing changes for the address: no grant, no subscription, no new profile."""
    other_list = await create_list(admin, sender["id"], slug="other")
    await record_consent(admin, news["id"], "listout@example.jp")
    await record_consent(admin, other_list["id"], "senderout@example.jp")
    for email, list_id in (("listout@example.jp", news["id"]), ("senderout@example.jp", None)):
        optout = await admin.post(
            "/optouts",
            json={
                "email": email,
                "list_id": list_id,
                "sender_id": sender["id"],
                "channel": "phone",
            },
        )
        assert optout.status_code == 201, optout.text
    # An erased person: only the keyed hash of the address remains (DS-3).
    hasher = await runtime.hasher()
    async with runtime.sessionmaker() as session, session.begin():
        session.add(
            Suppression(
                address_hash=hasher("erased@example.jp"),
                scope=SuppressionScope.GLOBAL,
                scope_ref=0,
                reason=SuppressionReason.ERASURE,
            )
        )
    before = await counts(runtime)

    rows = [
        {"email": email, "consent": transaction_consent(sender["id"])}
        for email in ("listout@example.jp", "senderout@example.jp", "erased@example.jp")
    ] + [{"email": "fresh@example.jp", "consent": transaction_consent(sender["id"])}]
    report = await import_json(admin, news["id"], rows)

    assert (report["suppressed"], report["consented"], report["imported"]) == (3, 1, 1)
    items = await items_of(runtime, report["import_id"])
    assert {e: i.outcome for e, i in items.items()} == {
        "listout@example.jp": "suppressed",
        "senderout@example.jp": "suppressed",
        "erased@example.jp": "suppressed",
        "fresh@example.jp": "consented",
    }
    assert all(i.consent_event_id is None for e, i in items.items() if e != "fresh@example.jp")
    after = await counts(runtime)
    assert after["consent_events"] == before["consent_events"] + 1  # fresh@ only
    assert after["subscribers"] == before["subscribers"] + 1  # erased@ is not re-created
    assert await subscriber(runtime, "erased@example.jp") is None
    listout = await subscriber(runtime, "listout@example.jp")
    assert listout is not None
    assert await gate(runtime, listout.id, news["id"]) is GateVerdict.SUPPRESSED
    senderout = await subscriber(runtime, "senderout@example.jp")
    assert senderout is not None
    async with runtime.sessionmaker() as session:
        subscribed = await session.scalar(
            select(Subscription.status).where(
                Subscription.subscriber_id == senderout.id, Subscription.list_id == news["id"]
            )
        )
    assert subscribed is None  # no subscription to this list appeared
    for email in ("listout@example.jp", "senderout@example.jp"):
        status = (await admin.get("/suppressions", params={"email": email})).json()
        assert status["suppressed"] is True


async def test_ds4_rerunning_an_import_creates_no_duplicate_subscriber_or_subscription(
    admin, runtime, sender, news
):
    """A second run of the same rows is a second acquisition record; people and subscriptions
    stay one each; a consented row gets a second grant naming the second import (the ledger
    is append-only), and stays mailable."""
    rows = [
        {"email": "repeat@example.jp", "consent": transaction_consent(sender["id"])},
        {"email": "cold@example.jp", "name": "冷"},
    ]
    first = await import_json(admin, news["id"], rows)
    after_first = await counts(runtime)
    second = await import_json(admin, news["id"], rows)
    after_second = await counts(runtime)

    assert second["import_id"] != first["import_id"]
    assert (second["consented"], second["unconsented"], second["invalid"]) == (1, 1, [])
    assert after_second["subscribers"] == after_first["subscribers"] == 2
    assert after_second["subscriptions"] == after_first["subscriptions"] == 1
    assert after_second["imports"] == 2
    assert after_second["import_items"] == 4
    assert after_second["consent_events"] == 2
    async with runtime.sessionmaker() as session:
        recorded_by = (
            await session.scalars(select(ConsentEvent.recorded_by).order_by(ConsentEvent.id))
        ).all()
        subscription = (await session.scalars(select(Subscription))).one()
    assert recorded_by == [f"import:{first['import_id']}", f"import:{second['import_id']}"]
    assert subscription.status == "active"
    person = await subscriber(runtime, "repeat@example.jp")
    assert person is not None
    assert await gate(runtime, person.id, news["id"]) is GateVerdict.MAILABLE


async def test_ds4_an_import_leaves_a_persons_own_signup_and_profile_alone(
    admin, runtime, news, outbox, smtp_server
):
    """A person who signed up themselves keeps their pending double opt-in and their name; the
    import without consent neither confirms nor cancels it, and adds no mail of its own."""
    await runtime.hasher()  # loaded first: signup() asks for it inside its own session
    await signup(runtime, news["id"], "self@example.jp")
    async with runtime.sessionmaker() as session, session.begin():
        person = (await session.scalars(select(Subscriber))).one()
        person.name = "本人"
    before = await counts(runtime)
    report = await import_json(admin, news["id"], [{"email": "self@example.jp", "name": "他人"}])
    assert report["unconsented"] == 1
    after = await counts(runtime)
    assert after["outbox_messages"] == before["outbox_messages"] == 1  # the person's own
    assert after["subscriptions"] == before["subscriptions"]
    person_after = await subscriber(runtime, "self@example.jp")
    assert person_after is not None
    assert person_after.name == "本人"
    async with runtime.sessionmaker() as session:
        status = await session.scalar(select(Subscription.status))
        assert status == "pending"
        assert await session.scalar(select(func.count()).select_from(ConsentEvent)) == 1
