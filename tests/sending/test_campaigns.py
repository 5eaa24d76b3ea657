"""Campaigns end to end: the API starts them, a real sender sends to a real SMTP server
(aiosmtpd), and the delivery ledger and the mailbox agree."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.campaigns.service import start_due_scheduled
from app.models import (
    Campaign,
    Delivery,
    Sender,
    Subscriber,
    Subscription,
    Suppression,
    Template,
)
from app.models.enums import SubscriptionStatus, SuppressionScope
from app.sending.ratelimit import RateLimiter
from app.sending.runner import DeliveryRunner, DrainReport
from tests.factories import consent, consent_many, make_world, start

# The sender pipelines when the server offers PIPELINING (RFC 2920) and otherwise sends one
# command at a time through aiosmtplib: the central promises are proven on both paths.
with_and_without_pipelining = pytest.mark.parametrize(
    "smtp_server", [True, False], ids=["pipelining", "no-pipelining"], indirect=True
)


@pytest.fixture
def runner(app: Any) -> DeliveryRunner:
    return DeliveryRunner(app.state.runtime, app.state.transport, worker_id="test-worker")


async def deliveries(runtime: Any, campaign_id: int) -> dict[int, Delivery]:
    async with runtime.sessionmaker() as session:
        rows = (
            await session.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id))
        ).all()
    return {d.subscriber_id: d for d in rows}


@with_and_without_pipelining
async def test_sends_once_to_each_consented_recipient_and_no_one_else(
    admin, runtime, runner, smtp_server, client
):
    """SG-1, CC-1: only recipients with a valid basis get the campaign; each exactly once, and
    each delivery records the consent event it relied on."""
    world = await make_world(runtime)
    emails = await consent_many(runtime, world.list_id, 5)
    # A person with no consent, and one whose double opt-in is still pending.
    assert (
        await admin.post("/subscribers", json={"email": "noconsent@example.jp"})
    ).status_code == 201
    pending = await client.post(
        "/subscribe/news",
        json={"email": "pending@example.jp", "consent": True, "consent_text": "同意します"},
    )
    assert pending.status_code == 202

    campaign = await start(admin, world)
    assert campaign["status"] == "sending"
    report = await runner.drain(campaign["id"])

    assert report.finished
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == sorted(emails)
    assert smtp_server.messages_to("noconsent@example.jp") == []
    assert smtp_server.messages_to("pending@example.jp") == []
    body = (await admin.get(f"/campaigns/{campaign['id']}")).json()
    assert body["status"] == "sent"
    assert body["stats"]["total"] == 5
    assert body["stats"]["sent"] == 5
    rows = (await admin.get(f"/campaigns/{campaign['id']}/deliveries")).json()["items"]
    assert {r["email"] for r in rows} == set(emails)
    assert all(r["consent_event_id"] and r["status"] == "sent" and r["sent_at"] for r in rows)


async def test_received_message_carries_identity_and_one_click_headers(
    admin, runtime, runner, smtp_server
):
    """MH-1, MH-3: the mail as received by the SMTP server has the footer in both parts and the
    RFC 8058 headers; its one-click URL unsubscribes the recipient (OO-1)."""
    world = await make_world(runtime)
    await consent(runtime, world.list_id, "hanako@example.jp")
    campaign = await start(admin, world)
    await runner.drain(campaign["id"])

    [received] = smtp_server.received
    message = received.message
    assert message["Subject"] == "【お知らせ】承諾ニュース 12月号"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = message["List-Unsubscribe"].strip("<>")
    assert url.startswith("https://news.example.test/unsubscribe/")
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for part in (text, html):
        assert "株式会社承諾" in part
        assert "東京都千代田区千代田1-1" in part
        assert "support@shodaku.example" in part
        assert url in part
    assert "hanako@example.jp" not in url

    path = url.removeprefix("https://news.example.test")
    response = await admin.post(
        f"https://news.example.test{path}", data={"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200
    async with runtime.sessionmaker() as session:
        status = await session.scalar(select(Subscription.status))
    assert status == SubscriptionStatus.UNSUBSCRIBED


async def test_withdrawal_and_suppression_after_start_are_rechecked_at_claim(
    admin, runtime, runner, smtp_server
):
    """SG-1: a recipient who loses their basis, or is suppressed, after the campaign started is
    skipped when the worker claims the batch — never sent."""
    world = await make_world(runtime)
    emails = await consent_many(runtime, world.list_id, 4)
    campaign = await start(admin, world)
    await runner._materialize_some(campaign["id"])  # deliveries exist, none claimed yet
    hasher = await runtime.hasher()
    async with runtime.sessionmaker() as session, session.begin():
        # Behind the opt-out service's back (which would also cancel the delivery): the claim
        # must catch both on its own.
        await session.execute(
            update(Subscription)
            .where(Subscription.subscriber_id == 1)
            .values(status=SubscriptionStatus.UNSUBSCRIBED)
        )
        session.add(
            Suppression(
                address_hash=hasher(emails[1]),
                scope=SuppressionScope.GLOBAL,
                scope_ref=0,
                reason="hard_bounce",
            )
        )
    await runner.drain(campaign["id"])

    assert smtp_server.messages_to(emails[0]) == []
    assert smtp_server.messages_to(emails[1]) == []
    assert len(smtp_server.messages_to(emails[2])) == 1
    stats = (await admin.get(f"/campaigns/{campaign['id']}")).json()["stats"]
    assert stats["skipped_no_consent"] == 1
    assert stats["skipped_suppressed"] == 1
    assert stats["sent"] == 2


async def test_optout_cancels_queued_delivery_in_the_same_transaction(
    admin, runtime, runner, smtp_server
):
    """SG-2: after POST /optouts answers, the address's queued delivery is cancelled."""
    world = await make_world(runtime)
    emails = await consent_many(runtime, world.list_id, 3)
    campaign = await start(admin, world)
    await runner._materialize_some(campaign["id"])
    response = await admin.post(
        "/optouts", json={"email": emails[2], "list_id": world.list_id, "channel": "phone"}
    )
    assert response.status_code == 201, response.text
    rows = (await admin.get(f"/campaigns/{campaign['id']}/deliveries?status=cancelled")).json()
    assert [r["email"] for r in rows["items"]] == [emails[2]]
    await runner.drain(campaign["id"])
    assert smtp_server.messages_to(emails[2]) == []
    assert smtp_server.count() == 2


@with_and_without_pipelining
async def test_optout_answered_mid_campaign_stops_every_later_smtp_transaction(
    admin, runtime, app, smtp_server
):
    """SG-2: while a campaign is sending, recipients opt out by one-click; no SMTP transaction to
    any of them starts after their opt-out was answered."""
    world = await make_world(runtime)
    emails = await consent_many(runtime, world.list_id, 60)

    def slow(_rcpt: str) -> None:
        time.sleep(0.01)  # a slow server, so the campaign is still going when they opt out
        return None

    smtp_server.behaviour.on_data = slow
    campaign = await start(admin, world)
    sender = DeliveryRunner(runtime, app.state.transport, worker_id="w1")
    sending = asyncio.create_task(sender.drain(campaign["id"]))
    hasher = await runtime.hasher()
    answered: dict[str, float] = {}
    async with runtime.sessionmaker() as session:
        ids = dict(
            (await session.execute(select(Subscription.subscriber_id, Subscription.list_id))).all()
        )
    targets = emails[20::8]
    for email in targets:
        await asyncio.sleep(0.05)
        async with runtime.sessionmaker() as session:
            subscriber = await session.scalar(select(Subscriber).where(Subscriber.email == email))
        token = runtime.signer.unsubscribe_token(subscriber.id, ids[subscriber.id], hasher(email))
        response = await admin.post(
            f"https://news.example.test/unsubscribe/{token}",
            data={"List-Unsubscribe": "One-Click"},
        )
        assert response.status_code == 200
        answered[email] = time.time()
    await sending
    await DeliveryRunner(runtime, app.state.transport, worker_id="w2").drain(campaign["id"])

    # Every transaction that started counts, delivered or abandoned.
    late = [
        (email, mail_at - answered[email])
        for email, mail_at in smtp_server.transactions
        if email in answered and mail_at >= answered[email]
    ]
    assert late == []
    # The opt-outs really happened while the campaign was going out: some targets were spared,
    # and mail kept flowing after the first answer.
    assert any(not smtp_server.messages_to(e) for e in targets)
    assert max(r.mail_at for r in smtp_server.received) > min(answered.values())
    # Everyone else got the campaign exactly once.
    others = [e for e in emails if e not in targets]
    assert all(len(smtp_server.messages_to(e)) == 1 for e in others)


async def test_pause_stops_claims_and_resume_continues_without_duplicates(
    admin, runtime, runner, smtp_server
):
    """Pause stops new sends at once; resume continues where the ledger says."""
    world = await make_world(runtime)
    emails = await consent_many(runtime, world.list_id, 12)
    campaign = await start(admin, world)
    runtime.settings.send_batch_size = 5
    await runner.drain(campaign["id"], max_batches=1)
    assert smtp_server.count() == 5
    paused = await admin.post(f"/campaigns/{campaign['id']}/pause")
    assert paused.json()["status"] == "paused"
    await runner.drain(campaign["id"])
    assert smtp_server.count() == 5
    resumed = await admin.post(f"/campaigns/{campaign['id']}/resume")
    assert resumed.json()["status"] == "sending"
    await runner.drain(campaign["id"])
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == sorted(emails)
    assert (await admin.get(f"/campaigns/{campaign['id']}")).json()["status"] == "sent"


async def test_pause_releases_rows_a_worker_already_claimed(admin, runtime, runner, smtp_server):
    """A worker holding claimed rows sends none of them once the campaign is paused."""
    world = await make_world(runtime)
    await consent_many(runtime, world.list_id, 4)
    campaign = await start(admin, world)
    await runner._materialize_some(campaign["id"])
    from app.sending import deliveries as repo

    async with runtime.sessionmaker() as session, session.begin():
        claim = await repo.claim_batch(
            session,
            campaign_id=campaign["id"],
            worker="test-worker",
            limit=10,
            lease=timedelta(minutes=5),
        )
    assert len(claim.recipients) == 4
    await admin.post(f"/campaigns/{campaign['id']}/pause")
    async with runtime.sessionmaker() as session:
        c = await session.get(Campaign, campaign["id"])
    await runner._send_claimed(c, await runner._composer(c), claim.recipients, DrainReport())
    assert smtp_server.count() == 0
    stats = (await admin.get(f"/campaigns/{campaign['id']}")).json()["stats"]
    assert stats["queued"] == 4


async def delivery_ids(runtime: Any, campaign_id: int) -> list[int]:
    """The campaign's deliveries, in id order."""
    async with runtime.sessionmaker() as session:
        return list(
            (
                await session.scalars(
                    select(Delivery.id)
                    .where(Delivery.campaign_id == campaign_id)
                    .order_by(Delivery.id)
                )
            ).all()
        )


async def claimed_ids(session: Any, campaign_id: int, worker: str, limit: int) -> list[int]:
    """What one claim by ``worker`` takes, in the order it takes them."""
    from app.sending import deliveries as repo

    claim = await repo.claim_batch(
        session,
        campaign_id=campaign_id,
        worker=worker,
        limit=limit,
        lease=timedelta(minutes=5),
    )
    return [r.delivery_id for r in claim.recipients]


async def test_claim_takes_due_deliveries_first_come_whatever_made_them_due(admin, runtime, runner):
    """A claim takes exactly the due deliveries, lowest id first, up to its limit: first
    attempts, retries whose time has come, and rows whose worker's lease ran out, mixed. Not a
    retry still waiting, a row under a live lease, or a finished one."""

    world = await make_world(runtime)
    await consent_many(runtime, world.list_id, 12)
    campaign = await start(admin, world)
    await runner._materialize_some(campaign["id"])
    now = datetime.now(UTC)
    past, future = now - timedelta(minutes=1), now + timedelta(hours=1)
    # Position in id order -> the state it is put in; None leaves a first attempt.
    states: list[dict[str, Any] | None] = [
        {"status": "sending", "lease_expires_at": past, "claimed_by": "dead-worker"},
        {"status": "queued", "next_attempt_at": future, "attempts": 1},
        None,
        {"status": "queued", "next_attempt_at": past, "attempts": 1},
        {"status": "sending", "lease_expires_at": future, "claimed_by": "live-worker"},
        {"status": "sent", "attempts": 1},
        {"status": "in_flight", "lease_expires_at": past, "claimed_by": "dead-worker"},
        None,
        {"status": "queued", "next_attempt_at": past, "attempts": 2},
        {"status": "skipped_no_consent"},
        None,
        {"status": "queued", "next_attempt_at": future, "attempts": 2},
    ]
    ids = await delivery_ids(runtime, campaign["id"])
    async with runtime.sessionmaker() as session, session.begin():
        for delivery_id, values in zip(ids, states, strict=True):
            if values:
                await session.execute(
                    update(Delivery).where(Delivery.id == delivery_id).values(**values)
                )
    due = [
        delivery_id
        for delivery_id, values in zip(ids, states, strict=True)
        if values is None
        or values.get("claimed_by") == "dead-worker"
        or (values["status"] == "queued" and values["next_attempt_at"] == past)
    ]
    assert len(due) == 7

    claimed: list[list[int]] = []
    for _ in range(3):
        async with runtime.sessionmaker() as session, session.begin():
            claimed.append(await claimed_ids(session, campaign["id"], "test-worker", 4))
    assert claimed == [due[:4], due[4:], []]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_concurrent_claims_on_postgres_each_get_a_full_batch_of_their_own(
    admin, runtime, runner
):
    """Two workers claiming at once: the second skips the rows the first holds (SKIP LOCKED)
    and takes the next ones, a full batch, rather than an empty one or the same rows."""
    world = await make_world(runtime)
    await consent_many(runtime, world.list_id, 8)
    campaign = await start(admin, world)
    await runner._materialize_some(campaign["id"])

    async with runtime.sessionmaker() as first, first.begin():
        # Not committed yet: its rows stay locked.
        held = await claimed_ids(first, campaign["id"], "worker-a", 3)
        async with runtime.sessionmaker() as second, second.begin():
            taken = await asyncio.wait_for(
                claimed_ids(second, campaign["id"], "worker-b", 3), timeout=10
            )
    ids = await delivery_ids(runtime, campaign["id"])
    assert held == list(ids[:3])
    assert taken == list(ids[3:6])


async def test_cancel_cancels_everything_not_yet_sent(admin, runtime, runner, smtp_server):
    world = await make_world(runtime)
    await consent_many(runtime, world.list_id, 6)
    campaign = await start(admin, world)
    await runner._materialize_some(campaign["id"])
    cancelled = await admin.post(f"/campaigns/{campaign['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["stats"]["cancelled"] == 6
    await runner.drain(campaign["id"])
    assert smtp_server.count() == 0
    again = await admin.post(f"/campaigns/{campaign['id']}/cancel")
    assert again.status_code == 409


@with_and_without_pipelining
async def test_transient_failure_is_retried_with_backoff_then_sent(
    admin, runtime, runner, smtp_server
):
    """A 4xx at DATA retries later (exponential backoff); the retry succeeds."""
    world = await make_world(runtime)
    [email] = await consent_many(runtime, world.list_id, 1)
    smtp_server.behaviour.data_replies[email] = ["451 4.3.0 Try again later"]
    campaign = await start(admin, world)
    report = await runner.drain(campaign["id"])
    assert report.retried == 1
    assert not report.finished
    [row] = (await admin.get(f"/campaigns/{campaign['id']}/deliveries")).json()["items"]
    assert row["status"] == "queued"
    assert row["attempts"] == 1
    assert row["smtp_response"].startswith("451")
    async with runtime.sessionmaker() as session:
        due = await session.scalar(select(Delivery.next_attempt_at))
    assert due > datetime.now(UTC) + timedelta(seconds=20)

    # Not due yet: nothing happens.
    await runner.drain(campaign["id"])
    assert smtp_server.count() == 0
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(Delivery).values(next_attempt_at=datetime.now(UTC)))
    report = await runner.drain(campaign["id"])
    assert report.finished
    assert len(smtp_server.messages_to(email)) == 1
    [row] = (await admin.get(f"/campaigns/{campaign['id']}/deliveries")).json()["items"]
    assert row["status"] == "sent"
    assert row["attempts"] == 2


async def test_connection_refused_is_retried_not_lost(admin, runtime, runner, smtp_server):
    """The SMTP server unreachable: deliveries go back to the queue, none is lost or failed."""
    world = await make_world(runtime)
    await consent_many(runtime, world.list_id, 3)
    campaign = await start(admin, world)
    smtp_server.stop()
    # Even with a single attempt allowed: an unreachable server never exhausts a recipient.
    runtime.settings.send_max_attempts = 1
    report = await runner.drain(campaign["id"])
    assert report.retried == 3
    assert report.sent == 0
    stats = (await admin.get(f"/campaigns/{campaign['id']}")).json()["stats"]
    assert stats["queued"] == 3
    assert stats["failed"] == 0
    smtp_server.start()
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(Delivery).values(next_attempt_at=datetime.now(UTC)))
    await runner.drain(campaign["id"])
    assert smtp_server.count() == 3


@with_and_without_pipelining
async def test_permanent_failure_fails_and_unknown_user_is_suppressed(
    admin, runtime, runner, smtp_server
):
    """A 5xx at DATA fails the delivery; a 5xx at RCPT (unknown user) also suppresses the
    address for good (SG-4, reason hard_bounce)."""
    world = await make_world(runtime)
    rejected, unknown, fine = await consent_many(runtime, world.list_id, 3)
    smtp_server.behaviour.data_replies[rejected] = ["554 5.6.0 Message rejected"]
    smtp_server.behaviour.rcpt_replies[unknown] = "550 5.1.1 No such user"
    campaign = await start(admin, world)
    report = await runner.drain(campaign["id"])

    assert report.finished
    by_email = {
        r["email"]: r
        for r in (await admin.get(f"/campaigns/{campaign['id']}/deliveries")).json()["items"]
    }
    assert by_email[rejected]["status"] == "failed"
    assert by_email[rejected]["smtp_response"].startswith("554")
    assert by_email[unknown]["status"] == "failed"
    assert by_email[unknown]["smtp_response"].startswith("550")
    assert by_email[fine]["status"] == "sent"
    hasher = await runtime.hasher()
    async with runtime.sessionmaker() as session:
        reasons = dict(
            (await session.execute(select(Suppression.address_hash, Suppression.reason))).all()
        )
    assert reasons == {hasher(unknown): "hard_bounce"}


async def test_preflight_refuses_with_every_reason(admin, runtime):
    """SG-3: a sender lacking its postal address and any contact is refused at send with 409
    naming the missing items, together with the other reasons (empty list)."""
    world = await make_world(
        runtime,
        sender={"name": "名無し商店", "postal_address": " ", "from_email": "n@shop.example"},
    )
    created = await admin.post(
        "/campaigns",
        json={"name": "x", "list_id": world.list_id, "template_id": world.template_id},
    )
    response = await admin.post(f"/campaigns/{created.json()['id']}/send")
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "PreflightFailed"
    reasons = " ".join(body["reasons"])
    assert "postal_address" in reasons
    assert "contact" in reasons
    assert "no recipient" in reasons
    assert (await admin.get(f"/campaigns/{created.json()['id']}")).json()["status"] == "draft"


async def test_sending_twice_never_doubles_deliveries(admin, runtime, runner, smtp_server):
    world = await make_world(runtime)
    await consent_many(runtime, world.list_id, 3)
    campaign = await start(admin, world)
    again = await admin.post(f"/campaigns/{campaign['id']}/send")
    assert again.status_code == 409
    async with runtime.sessionmaker() as session, session.begin():
        row = await session.get(Campaign, campaign["id"])
        row.materialized_up_to = 0  # as if materialisation ran again from the start
        row.materialized = False
    await runner.drain(campaign["id"])
    async with runtime.sessionmaker() as session:
        total = await session.scalar(select(func.count()).select_from(Delivery))
    assert total == 3
    assert smtp_server.count() == 3


async def test_campaign_under_another_sender_is_refused(admin, runtime):
    """CC-1: consent is given to one sender; a campaign cannot borrow a list of another."""
    world = await make_world(runtime)
    other = await make_world(runtime, slug="other")
    response = await admin.post(
        "/campaigns",
        json={
            "name": "x",
            "list_id": world.list_id,
            "template_id": world.template_id,
            "sender_id": other.sender_id,
        },
    )
    assert response.status_code == 422
    assert "sender_id" in response.json()["detail"]


async def test_scheduled_campaign_starts_when_due(admin, runtime, runner, smtp_server):
    world = await make_world(runtime)
    await consent_many(runtime, world.list_id, 2)
    at = datetime.now(UTC) + timedelta(hours=2)
    campaign = await start(admin, world, scheduled_at=at.isoformat())
    assert campaign["status"] == "scheduled"
    await runner.drain(campaign["id"])
    assert smtp_server.count() == 0
    async with runtime.sessionmaker() as session, session.begin():
        assert await start_due_scheduled(session) == []
    async with runtime.sessionmaker() as session, session.begin():
        assert await start_due_scheduled(session, now=at + timedelta(seconds=1)) == [campaign["id"]]
    await runner.drain(campaign["id"])
    assert smtp_server.count() == 2


async def test_campaign_api_errors(admin, runtime, read_key, app):
    world = await make_world(runtime)
    assert (await admin.get("/campaigns/999")).status_code == 404
    bad = await admin.post(
        "/campaigns",
        json={
            "name": "x\r\nBcc: a@b.c",
            "list_id": world.list_id,
            "template_id": world.template_id,
        },
    )
    assert bad.status_code == 422
    assert bad.json()["error"] == "ValidationError"
    naive = await admin.post(
        "/campaigns",
        json={
            "name": "x",
            "list_id": world.list_id,
            "template_id": world.template_id,
            "scheduled_at": "2027-01-01T09:00:00",
        },
    )
    assert naive.status_code == 422
    missing = await admin.post(
        "/campaigns", json={"name": "x", "list_id": 999, "template_id": world.template_id}
    )
    assert missing.status_code == 422
    assert (await admin.get("/campaigns/1/deliveries?cursor=abc")).status_code in (404, 422)
    reader_headers = {"Authorization": f"Bearer {read_key}"}
    forbidden = await admin.post(
        "/campaigns",
        json={"name": "x", "list_id": world.list_id, "template_id": world.template_id},
        headers=reader_headers,
    )
    assert forbidden.status_code == 403


async def test_one_uncomposable_recipient_fails_alone(admin, runtime, runner, smtp_server):
    """A recipient whose data the template cannot render fails that delivery only; the rest of
    the chunk is sent."""
    world = await make_world(runtime)
    good = await consent_many(runtime, world.list_id, 3)
    bad_id = await consent(runtime, world.list_id, "zero@example.jp")
    async with runtime.sessionmaker() as session, session.begin():
        template = await session.get(Template, world.template_id)
        template.html = "<p>{{ 100 // attributes.get('n', 1) }}</p>"
        subscriber = await session.get(Subscriber, bad_id)
        subscriber.attributes = {"n": 0}
    campaign = await start(admin, world)
    report = await runner.drain(campaign["id"])
    assert report.finished
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == sorted(good)
    failed = (await admin.get(f"/campaigns/{campaign['id']}/deliveries?status=failed")).json()
    assert [r["email"] for r in failed["items"]] == ["zero@example.jp"]
    assert "not composable" in failed["items"][0]["smtp_response"]


async def test_campaign_that_cannot_be_composed_is_paused_not_stranded(
    admin, runtime, runner, smtp_server, tmp_path
):
    """If the worker cannot compose the campaign at all (the DKIM key became unreadable after
    the preflight), it pauses the campaign and claims nothing."""
    world = await make_world(runtime)
    await consent_many(runtime, world.list_id, 2)
    campaign = await start(admin, world)
    runtime.settings.dkim_selector = "s1"
    runtime.settings.dkim_domain = "shodaku.example"
    runtime.settings.dkim_private_key = tmp_path / "missing.pem"
    await runner.drain(campaign["id"])
    body = (await admin.get(f"/campaigns/{campaign['id']}")).json()
    assert body["status"] == "paused"
    assert body["stats"]["sending"] == 0
    assert smtp_server.count() == 0


async def test_scheduled_campaign_rechecks_the_sender_identity_when_it_starts(admin, runtime):
    """SG-3 at the moment a scheduled campaign starts: a sender whose postal address was
    blanked since the preflight gets its campaign paused, not sent."""
    world = await make_world(runtime)
    await consent_many(runtime, world.list_id, 1)
    at = datetime.now(UTC) + timedelta(hours=1)
    campaign = await start(admin, world, scheduled_at=at.isoformat())
    async with runtime.sessionmaker() as session, session.begin():
        sender = await session.get(Sender, world.sender_id)
        sender.postal_address = " "
    async with runtime.sessionmaker() as session, session.begin():
        assert await start_due_scheduled(session, now=at + timedelta(seconds=1)) == []
    assert (await admin.get(f"/campaigns/{campaign['id']}")).json()["status"] == "paused"


async def test_campaign_list_pages_newest_first_with_each_campaigns_stats(
    admin, runtime, runner, smtp_server
):
    world = await make_world(runtime)
    await consent_many(runtime, world.list_id, 2)
    first = await start(admin, world)
    await runner.drain(first["id"])
    second = await start(admin, world)
    drafted = await admin.post(
        "/campaigns",
        json={"name": "下書き", "list_id": world.list_id, "template_id": world.template_id},
    )
    page = (await admin.get("/campaigns?limit=2")).json()
    assert [c["id"] for c in page["items"]] == [drafted.json()["id"], second["id"]]
    assert page["items"][0]["stats"]["total"] == 0
    assert page["items"][1]["status"] == "sending"
    rest = (await admin.get(f"/campaigns?limit=2&cursor={page['next_cursor']}")).json()
    assert [c["id"] for c in rest["items"]] == [first["id"]]
    assert rest["items"][0]["stats"]["sent"] == 2
    assert rest["next_cursor"] is None
    assert (await admin.get("/campaigns?cursor=²")).status_code == 422


async def test_with_a_send_rate_each_chunk_is_recorded_before_the_wait_for_the_next(
    admin, runtime, app, smtp_server
):
    """With SHODAKU_SEND_RATE set, the next chunk can wait long (longer than a lease, at a low
    rate): the chunk just sent is recorded before that wait, not with the next chunk, so its
    rows are never left in flight for another worker to take over and send again."""
    world = await make_world(runtime)
    await consent_many(runtime, world.list_id, 8)  # two chunks of send_concurrency (4)
    campaign = await start(admin, world)
    sender = DeliveryRunner(
        runtime, app.state.transport, worker_id="w1", rate=RateLimiter(4.0, burst=4)
    )
    sending = asyncio.create_task(sender.drain(campaign["id"]))

    async def statuses() -> dict[str, int]:
        async with runtime.sessionmaker() as session:
            rows = await session.execute(
                select(Delivery.status, func.count())
                .where(Delivery.campaign_id == campaign["id"])
                .group_by(Delivery.status)
            )
            return {status: n for status, n in rows.all()}

    seen_between: dict[str, int] | None = None
    while not sending.done():
        if smtp_server.count() == 4:
            seen_between = await statuses()
            if seen_between.get("sent") == 4:
                break
        await asyncio.sleep(0.02)
    # The first chunk is out, the second waits about a second for the rate: the four sent are
    # already recorded as sent.
    assert smtp_server.count() == 4
    assert seen_between is not None
    assert seen_between.get("sent") == 4
    assert seen_between.get("in_flight", 0) == 0
    await sending
    assert (await statuses()) == {"sent": 8}
