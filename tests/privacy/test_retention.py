"""CR-2 (Ordinance 4(2)): consent records are held until one month after sending to the address
stops (one year under a measures order; three years by default), and the purge removes them only
after that, each leaving a ledger tombstone (CR-3). The clock is frozen and moved across each
boundary."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.models import ConsentEvent, Delivery, Subscription
from app.models.enums import DeliveryStatus
from app.privacy.retention import purge
from app.sending import deliveries as campaigns_repo
from app.sending.deliveries import DeliveryResult
from tests.factories import consent
from tests.privacy.conftest import (
    queue_deliveries,
    send_campaign,
    set_policy,
    start_campaign,
    tombstones,
    utc,
    world_with,
)
from tests.queries import events_of


async def _optout(admin: Any, email: str, sender_id: int) -> None:
    response = await admin.post(
        "/optouts", json={"email": email, "sender_id": sender_id, "channel": "phone"}
    )
    assert response.status_code == 201, response.text


@pytest.mark.usefixtures("smtp_server")  # it sends a campaign, reading none of it
@pytest.mark.parametrize(
    ("policy", "last_day_utc"),
    [
        # Opt-out on 2027-01-20 12:00 JST; the hold runs through the whole Japanese day after...
        # ... 31 days: 2027-02-20 (JST), which ends at 2027-02-20T15:00Z.
        ({"retention_days": 31}, "2027-02-20T15:00"),
        # ... 366 days under a measures order: 2028-01-21 (JST), even were the stored policy
        # shorter (the API refuses one; the minimum still wins).
        ({"retention_days": 31, "under_measures_order": True}, "2028-01-21T15:00"),
        # ... the default three years (1095 days): 2030-01-19 (JST).
        ({}, "2030-01-19T15:00"),
    ],
    ids=["one-month", "measures-order-one-year", "default-three-years"],
)
async def test_cr2_a_record_is_purged_only_after_its_hold_and_leaves_a_tombstone(
    admin, app, runtime, clock, policy, last_day_utc
):
    """CR-2: the day before ``retain_until`` nothing is purged; the day after, the records of
    the address that stopped being mailed are, each replaced by a tombstone with its hashes
    (CR-3); the person still subscribed keeps everything."""
    world = await world_with(runtime, **policy)
    await consent(runtime, world.list_id, "taro@example.jp")
    await consent(runtime, world.list_id, "hanako@example.jp")
    await send_campaign(admin, app, world)
    clock.move_to(utc("2027-01-20T03:00"))
    await _optout(admin, "taro@example.jp", world.sender_id)
    taro = await events_of(runtime, "taro@example.jp")
    hanako = await events_of(runtime, "hanako@example.jp")
    assert [e.kind for e in taro] == ["grant", "withdraw"]
    hold = utc(last_day_utc)

    # The day before the hold ends (a dry run: nothing is stored), and its last minute: each
    # computes the hold afresh and removes nothing.
    clock.move_to(hold - timedelta(days=1))
    assert (await purge(runtime.sessionmaker, dry_run=True)).consent_events == 0
    clock.move_to(hold - timedelta(minutes=1))
    assert (await purge(runtime.sessionmaker, dry_run=False)).consent_events == 0
    assert [e.retain_until for e in await events_of(runtime, "taro@example.jp")] == [hold, hold]

    clock.move_to(hold + timedelta(hours=9))  # the next day in Japan
    report = await purge(runtime.sessionmaker, dry_run=False)

    assert report.consent_events == 2
    assert report.tombstones == 2
    assert await events_of(runtime, "taro@example.jp") == []
    assert [
        (t.event_id, t.sender_id, t.prev_hash, t.chain_hash) for t in await tombstones(runtime)
    ] == [(e.id, e.sender_id, e.prev_hash, e.chain_hash) for e in taro]
    assert all(e.chain_hash for e in taro)
    # Hanako is still subscribed: sending to her has not stopped.
    assert [e.id for e in await events_of(runtime, "hanako@example.jp")] == [e.id for e in hanako]
    # The delivery to Taro stays in the campaign's history, without the purged event.
    async with runtime.sessionmaker() as session:
        relied_on = (await session.scalars(select(Delivery.consent_event_id))).all()
    assert sorted(relied_on, key=lambda x: x or 0) == [None, hanako[0].id]


async def test_cr2_the_hold_runs_from_the_last_send(admin, runtime, clock):
    """CR-2: "one month after the day sending to that address stops". A message already handed
    to SMTP when the person opted out (23:59 in Japan) finished its transfer after midnight:
    that send is the last one, and the hold runs from its day, not from the withdrawal's."""
    world = await world_with(runtime, retention_days=31)
    await consent(runtime, world.list_id, "taro@example.jp")
    campaign_id = await start_campaign(admin, world)
    await queue_deliveries(runtime, campaign_id)
    clock.move_to(utc("2027-01-20T14:58"))
    async with runtime.sessionmaker() as session, session.begin():
        claim = await campaigns_repo.claim_batch(
            session, campaign_id=campaign_id, worker="w1", limit=10, lease=timedelta(minutes=5)
        )
        [delivery_id] = [r.delivery_id for r in claim.recipients]
        window = await campaigns_repo.open_send_window(
            session, ids=[delivery_id], worker="w1", lease=timedelta(minutes=5)
        )
    assert list(window.go) == [delivery_id]  # in flight: the SMTP transaction has started
    clock.move_to(utc("2027-01-20T14:59"))
    await _optout(admin, "taro@example.jp", world.sender_id)
    clock.move_to(utc("2027-01-20T15:01"))  # 00:01 on 2027-01-21 in Japan
    async with runtime.sessionmaker() as session, session.begin():
        await campaigns_repo.record_results(
            session, [DeliveryResult(delivery_id, DeliveryStatus.SENT, 1, "250 OK")], worker="w1"
        )

    # Held through 2027-02-21 (JST), a day longer than the withdrawal alone would hold it.
    clock.move_to(utc("2027-02-21T14:59"))
    assert (await purge(runtime.sessionmaker, dry_run=False)).consent_events == 0
    assert [e.retain_until for e in await events_of(runtime, "taro@example.jp")] == [
        utc("2027-02-21T15:00")
    ] * 2
    clock.move_to(utc("2027-02-21T15:01"))
    assert (await purge(runtime.sessionmaker, dry_run=False)).consent_events == 2


@pytest.mark.usefixtures("smtp_server")  # it sends a campaign, reading none of it
async def test_cr2_an_address_still_being_mailed_is_never_purged(admin, app, runtime, clock):
    """CR-2: while a subscription is active, sending has not stopped: its hold runs from now,
    so even ten years on with the shortest policy nothing of it is purged; the address that
    stopped in the same run is."""
    world = await world_with(runtime, retention_days=31)
    await consent(runtime, world.list_id, "hanako@example.jp")
    await consent(runtime, world.list_id, "taro@example.jp")
    await send_campaign(admin, app, world)
    await _optout(admin, "taro@example.jp", world.sender_id)

    later = utc("2037-01-10T03:00")
    clock.move_to(later)
    report = await purge(runtime.sessionmaker, dry_run=False)

    assert report.consent_events == 2  # Taro's grant and withdrawal
    [grant] = await events_of(runtime, "hanako@example.jp")
    assert grant.retain_until is not None
    assert grant.retain_until > later + timedelta(days=31)
    async with runtime.sessionmaker() as session:
        subscription = (await session.scalars(select(Subscription))).all()
    assert [(s.status, s.grant_event_id) for s in subscription if s.status == "active"] == [
        ("active", grant.id)
    ]


async def test_cr2_a_policy_change_extends_a_hold_and_never_shortens_one(admin, runtime, clock):
    """CR-2: a longer retention_days set later extends the holds already computed; a shorter
    one does not cut a hold already computed (it was reported, e.g. in an erasure report)."""
    world = await world_with(runtime, retention_days=31)
    await consent(runtime, world.list_id, "taro@example.jp")
    await _optout(admin, "taro@example.jp", world.sender_id)
    await purge(runtime.sessionmaker, dry_run=False)  # computes the 31-day hold
    first = [e.retain_until for e in await events_of(runtime, "taro@example.jp")]
    assert first == [utc("2027-02-10T15:00")] * 2

    await set_policy(runtime, world.sender_id, retention_days=400)
    clock.move_to(utc("2027-02-11T00:00"))
    report = await purge(runtime.sessionmaker, dry_run=False)
    assert report.consent_events == 0
    extended = [e.retain_until for e in await events_of(runtime, "taro@example.jp")]
    assert extended == [utc("2028-02-14T15:00")] * 2  # 2027-01-10 + 400 days, end of JST day

    await set_policy(runtime, world.sender_id, retention_days=31)
    clock.move_to(utc("2027-06-01T00:00"))
    report = await purge(runtime.sessionmaker, dry_run=False)
    assert report.consent_events == 0
    assert [e.retain_until for e in await events_of(runtime, "taro@example.jp")] == extended


async def test_cr2_dry_run_changes_nothing_and_reports_the_same_counts(admin, runtime, clock):
    """CR-2: ``--dry-run`` reports what a purge would remove and leaves every row as it was;
    the real purge then removes exactly that."""
    world = await world_with(runtime, retention_days=31)
    for name in ("taro", "jiro"):
        await consent(runtime, world.list_id, f"{name}@example.jp")
        await _optout(admin, f"{name}@example.jp", world.sender_id)
    await consent(runtime, world.list_id, "hanako@example.jp")
    clock.move_to(utc("2028-01-01T00:00"))

    dry = await purge(runtime.sessionmaker, dry_run=True)

    assert (dry.consent_events, dry.tombstones, dry.holds_computed) == (4, 4, 1)
    assert len(await events_of(runtime, "taro@example.jp")) == 2
    assert len(await events_of(runtime, "jiro@example.jp")) == 2
    assert await tombstones(runtime) == []
    async with runtime.sessionmaker() as session:
        holds = (await session.scalars(select(ConsentEvent.retain_until))).all()
    assert holds == [None] * 5

    real = await purge(runtime.sessionmaker, dry_run=False)
    assert real == dry
    assert await events_of(runtime, "taro@example.jp") == []
    assert len(await tombstones(runtime)) == 4


async def test_cr2_the_purge_works_in_batches(admin, runtime, clock):
    """CR-2: the purge handles events a batch at a time (bounded memory): a batch size smaller
    than the ledger gives the same result."""
    world = await world_with(runtime, retention_days=31)
    for i in range(7):
        await consent(runtime, world.list_id, f"user{i}@example.jp")
        await _optout(admin, f"user{i}@example.jp", world.sender_id)
    await consent(runtime, world.list_id, "hanako@example.jp")
    clock.move_to(utc("2028-01-01T00:00"))

    report = await purge(runtime.sessionmaker, dry_run=False, batch_size=3)

    assert report.consent_events == 14
    assert len(await tombstones(runtime)) == 14
    assert len(await events_of(runtime, "hanako@example.jp")) == 1


async def test_cr2_a_sender_policy_below_the_legal_minimum_is_refused(admin):
    """CR-2: retention_days is configurable per sender but never below one month (31 days),
    nor below one year (366 days) for a sender under a measures order: 422, nothing changed."""
    base = {
        "name": "株式会社承諾",
        "postal_address": "〒100-0001 東京都千代田区千代田1-1",
        "contact_email": "support@shodaku.example",
        "from_email": "news@shodaku.example",
    }
    created = await admin.post("/senders", json=base)
    assert created.status_code == 201
    sender = created.json()
    assert (sender["retention_days"], sender["under_measures_order"]) == (1095, False)
    path = f"/senders/{sender['id']}"

    too_short = await admin.patch(path, json={"retention_days": 30})
    assert too_short.status_code == 422
    assert too_short.json()["error"] == "ValidationError"
    assert "retention_days" in too_short.json()["detail"]
    assert (await admin.patch(path, json={"retention_days": 31})).json()["retention_days"] == 31

    order = await admin.patch(path, json={"under_measures_order": True})
    assert order.status_code == 422
    assert order.json()["error"] == "InvalidInput"
    assert "366" in order.json()["detail"]
    both = await admin.patch(path, json={"under_measures_order": True, "retention_days": 366})
    assert both.status_code == 200
    assert (both.json()["retention_days"], both.json()["under_measures_order"]) == (366, True)
    lower = await admin.patch(path, json={"retention_days": 365})
    assert lower.status_code == 422
    assert (await admin.patch(path, json={"retention_days": None})).status_code == 422
    assert (await admin.get(path)).json()["retention_days"] == 366

    refused = await admin.post(
        "/senders", json={**base, "under_measures_order": True, "retention_days": 100}
    )
    assert refused.status_code == 422
    assert len((await admin.get("/senders")).json()["items"]) == 1
