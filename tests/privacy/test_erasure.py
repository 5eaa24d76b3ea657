"""DS-3 (APPI Art. 35): DELETE /subscribers/{id} deletes the profile and its history in one
transaction, keeps the consent and opt-out evidence until its hold (CR-2) and suppresses the
address for good by its keyed hash, so that it is never mailed again."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from app.mail.transport import make_transport
from app.models import AuditLog, Delivery, OutboxMessage, Subscriber, Subscription
from app.privacy.retention import purge
from app.senders.retention_policy import end_of_day_jst
from app.sending import deliveries as campaigns_repo
from app.sending.runner import DeliveryRunner
from tests.factories import CONSENT_WORDING, consent, consent_body
from tests.privacy.conftest import (
    queue_deliveries,
    send_campaign,
    start_campaign,
    tombstones,
    utc,
    world_with,
)
from tests.queries import events_of


async def _person(admin: Any, list_id: int, email: str) -> int:
    """A person with a name and attributes and a recorded opt-in with its wording."""
    created = await admin.post(
        "/subscribers",
        json={
            "email": email,
            "name": "山田花子",
            "attributes": {"company": "承諾商事", "dept": "営業"},
        },
    )
    assert created.status_code == 201, created.text
    recorded = await admin.post(f"/lists/{list_id}/consents", json=consent_body(email))
    assert recorded.status_code == 201, recorded.text
    subscriber_id: int = created.json()["id"]
    return subscriber_id


async def test_ds3_erasure_deletes_the_person_and_holds_the_evidence(
    admin, app, client, runtime, clock, smtp_server
):
    """DS-3: one DELETE removes the profile, attributes, subscriptions, delivery history and
    outbox rows, cancels what was not yet sent, keeps every consent event with its address
    until its hold (CR-2: sending stops today, plus the three-year default), suppresses the
    address globally by its hash, and says so in the answer and in the audit log (DS-6)."""
    world = await world_with(runtime)
    hanako = await _person(admin, world.list_id, "hanako@example.jp")
    await consent(runtime, world.list_id, "taro@example.jp")
    await send_campaign(admin, app, world)  # one delivery sent to each
    pending = await start_campaign(admin, world)  # and one queued to each, not yet sent
    await queue_deliveries(runtime, pending)
    await world_with(runtime, slug="weekly")  # another sender
    signup = await client.post(
        "/subscribe/weekly",
        json={"email": "hanako@example.jp", "consent": True, "consent_text": CONSENT_WORDING},
    )
    assert signup.status_code == 202  # a confirmation request waits in the outbox
    clock.move_to(utc("2027-03-01T01:00"))
    held_events = await events_of(runtime, "hanako@example.jp")
    assert len(held_events) == 2

    response = await admin.delete(f"/subscribers/{hanako}")

    assert response.status_code == 200, response.text
    report = response.json()
    until = end_of_day_jst(utc("2027-03-01T01:00") + timedelta(days=1095))
    assert report["subscriber_id"] == hanako
    assert report["deleted"] == {
        "profile": 1,
        "attributes": 2,
        "subscriptions": 2,
        "deliveries": 2,
        "unsent_deliveries_cancelled": 1,
        "outbox_messages": 1,
        "mail_files": 0,  # mailed by SMTP: no file copies
    }
    assert report["held"]["consent_events"]["count"] == 2
    assert report["held"]["consent_events"]["until"] == until.isoformat().replace("+00:00", "Z")
    assert "CR-2" in report["held"]["consent_events"]["reason"]
    assert report["held"]["import_records"]["count"] == 0
    assert report["suppression"]["scope"] == "global"
    assert report["suppression"]["reason"] == "erasure"

    # Gone from every door.
    assert (await admin.get(f"/subscribers/{hanako}")).status_code == 404
    assert (await admin.get(f"/subscribers/{hanako}/export")).status_code == 404
    again = await admin.delete(f"/subscribers/{hanako}")
    assert again.status_code == 404
    assert again.json() == {"error": "NotFound", "detail": f"There is no subscriber {hanako}."}
    listed = await admin.get("/subscribers", params={"email": "hanako@example.jp"})
    assert listed.json()["items"] == []
    async with runtime.sessionmaker() as session:
        emails = (await session.scalars(select(Subscriber.email))).all()
        outbox = (await session.scalars(select(OutboxMessage))).all()
        subscriptions = (await session.scalars(select(Subscription.subscriber_id))).all()
    assert emails == ["taro@example.jp"]
    assert outbox == []
    assert hanako not in subscriptions

    # The evidence is held, with the address, detached from the deleted profile.
    kept = await events_of(runtime, "hanako@example.jp")
    assert [e.id for e in kept] == [e.id for e in held_events]
    assert {e.subscriber_id for e in kept} == {None}
    # Sending by the first sender stops today; the other never mailed her (still pending): its
    # record is held from the signup.
    assert [e.retain_until for e in kept] == [
        until,
        end_of_day_jst(utc("2027-01-10T03:00") + timedelta(days=1095)),
    ]
    assert [e.chain_hash for e in kept] == [e.chain_hash for e in held_events]

    # The address is suppressed everywhere, by its hash only.
    suppressions = (await admin.get("/suppressions", params={"email": "hanako@example.jp"})).json()
    assert suppressions["suppressed"] is True
    assert [(s["scope"], s["reason"]) for s in suppressions["suppressions"]] == [
        ("global", "erasure")
    ]

    # The queued delivery to her was cancelled with the rest: the campaign reaches only Taro.
    smtp_server.received.clear()
    await DeliveryRunner(runtime, app.state.transport).drain(pending)
    assert [r.rcpt_tos for r in smtp_server.received] == [["taro@example.jp"]]
    assert (await admin.get(f"/campaigns/{pending}")).json()["stats"]["total"] == 1

    # Audited, without the address.
    async with runtime.sessionmaker() as session:
        entry = (
            await session.scalars(select(AuditLog).where(AuditLog.action == "subscriber.erase"))
        ).one()
    assert entry.target_id == str(hanako)
    assert entry.api_key_id is not None
    assert entry.details["deleted"]["deliveries"] == 2
    assert "hanako" not in json.dumps(entry.details, ensure_ascii=False)

    # The holds are the ones reported: the day before each nothing goes, the day after it does.
    other_until = kept[1].retain_until
    clock.move_to(other_until - timedelta(days=1))
    assert (await purge(runtime.sessionmaker, dry_run=False)).consent_events == 0
    clock.move_to(until - timedelta(days=1))
    assert (await purge(runtime.sessionmaker, dry_run=False)).consent_events == 1
    assert [e.id for e in await events_of(runtime, "hanako@example.jp")] == [kept[0].id]
    clock.move_to(until + timedelta(days=1))
    assert (await purge(runtime.sessionmaker, dry_run=False)).consent_events == 1
    assert await events_of(runtime, "hanako@example.jp") == []
    assert [t.event_id for t in await tombstones(runtime)] == [e.id for e in held_events]
    # ... and the suppression outlives the evidence.
    still = (await admin.get("/suppressions", params={"email": "hanako@example.jp"})).json()
    assert still["suppressed"] is True


async def test_ds3_an_erased_address_is_never_mailed_again(
    admin, app, client, runtime, smtp_server, outbox
):
    """DS-3, OO-6: after erasure the address cannot be given consent by an operator (409
    AddressSuppressed) nor by a re-import, a signup by anyone stays pending even on a single
    opt-in list, and no campaign reaches it; only the person's own confirmation lifts it, for
    the list confirmed alone (OO-6): the erasure's suppression stays for everything else."""
    world = await world_with(runtime)
    hanako = await _person(admin, world.list_id, "hanako@example.jp")
    assert (await admin.delete(f"/subscribers/{hanako}")).status_code == 200

    # An operator (or a script) recreates the person and records consent: refused.
    again = await admin.post("/subscribers", json={"email": "hanako@example.jp"})
    assert again.status_code == 201  # a person with no consent is harmless
    refused = await admin.post(
        f"/lists/{world.list_id}/consents", json=consent_body("hanako@example.jp")
    )
    assert refused.status_code == 409
    assert refused.json()["error"] == "AddressSuppressed"
    # A provider's list brings the address again, with consent evidence: it stays suppressed.
    imported = await admin.post(
        "/imports",
        json={
            "acquisition": {
                "provider_name": "株式会社名簿サービス",
                "provider_address": "〒150-0001 東京都渋谷区神宮前1-2-3",
                "provider_representative": "代表取締役 鈴木一郎",
                "acquisition_circumstances": "提供元が展示会で名刺交換により取得した名簿",
                "received_at": "2026-11-01T10:00:00+09:00",
                "items": ["メールアドレス"],
            },
            "list_id": world.list_id,
            "rows": [
                {
                    "email": "hanako@example.jp",
                    "consent": {
                        "basis": "business_relationship",
                        "method": "api",
                        "obtained_at": "2026-10-01T00:00:00+09:00",
                        "evidence": {
                            "transaction_ref": "ORDER-2026-0042",
                            "transaction_date": "2026-10-01",
                        },
                        "sender_id": world.sender_id,
                    },
                }
            ],
        },
    )
    assert imported.status_code == 201, imported.text
    assert (imported.json()["suppressed"], imported.json()["consented"]) == (1, 0)

    # Somebody signs the address up on a single opt-in list: it stays pending.
    changed = await admin.patch(f"/lists/{world.list_id}", json={"double_opt_in": False})
    assert changed.status_code == 200, changed.text
    # A single opt-in list takes JSON signups only with its registered wordings (CR-1).
    registered = await admin.post(
        f"/lists/{world.list_id}/consent-texts", json={"text": CONSENT_WORDING}
    )
    assert registered.status_code == 201, registered.text
    signup = await client.post(
        "/subscribe/news",
        json={"email": "hanako@example.jp", "consent": True, "consent_text": CONSENT_WORDING},
    )
    assert signup.status_code == 200  # the same answer as for anybody (no address oracle)
    [person] = (await admin.get("/subscribers", params={"email": "hanako@example.jp"})).json()[
        "items"
    ]
    [subscription] = person["subscriptions"]
    assert (subscription["status"], subscription["gate"]) == ("pending", "suppressed")
    await consent(runtime, world.list_id, "taro@example.jp")
    smtp_server.received.clear()
    await send_campaign(admin, app, world)
    assert smtp_server.messages_to("hanako@example.jp") == []
    assert [r.rcpt_tos for r in smtp_server.received] == [["taro@example.jp"]]

    # The confirmation request went to the address that asked; her own confirmation lifts it.
    assert (await outbox()).sent == 1
    assert len(smtp_server.messages_to("hanako@example.jp")) == 1
    grant = (await events_of(runtime, "hanako@example.jp"))[-1]
    token = runtime.signer.confirm_token(grant.id)
    assert (await client.post(f"/confirm/{token}")).status_code == 200
    [person] = (await admin.get("/subscribers", params={"email": "hanako@example.jp"})).json()[
        "items"
    ]
    assert person["subscriptions"][0]["gate"] == "mailable"
    status = (await admin.get("/suppressions", params={"email": "hanako@example.jp"})).json()
    assert status["suppressed"] is True
    [erasure] = status["suppressions"]
    assert (erasure["scope"], erasure["reason"]) == ("global", "erasure")
    assert [lift["list_id"] for lift in erasure["lifted_for"]] == [world.list_id]


async def test_ds3_a_worker_holding_a_claimed_delivery_cannot_send_it_after_erasure(admin, runtime):
    """DS-3, SG-2: a worker that claimed a delivery before the erasure (and holds the address
    in memory) finds the row gone when it opens its send window, so it starts no SMTP
    transaction for it; the other recipient's delivery still opens."""
    world = await world_with(runtime)
    hanako = await _person(admin, world.list_id, "hanako@example.jp")
    await consent(runtime, world.list_id, "taro@example.jp")
    campaign_id = await start_campaign(admin, world)
    await queue_deliveries(runtime, campaign_id)
    async with runtime.sessionmaker() as session, session.begin():
        claim = await campaigns_repo.claim_batch(
            session, campaign_id=campaign_id, worker="w1", limit=10, lease=timedelta(minutes=5)
        )
    claimed = {r.email: r.delivery_id for r in claim.recipients}
    assert sorted(claimed) == ["hanako@example.jp", "taro@example.jp"]

    assert (await admin.delete(f"/subscribers/{hanako}")).status_code == 200
    async with runtime.sessionmaker() as session, session.begin():
        window = await campaigns_repo.open_send_window(
            session, ids=list(claimed.values()), worker="w1", lease=timedelta(minutes=5)
        )

    assert list(window.go) == [claimed["taro@example.jp"]]
    async with runtime.sessionmaker() as session:
        remaining = (await session.scalars(select(Delivery.id))).all()
    assert remaining == [claimed["taro@example.jp"]]


async def test_ds3_erasure_needs_an_admin_key_and_a_known_id(admin, reader, runtime):
    """DS-3: a read key may not erase (403, nothing deleted); an unknown id is 404."""
    world = await world_with(runtime)
    hanako = await _person(admin, world.list_id, "hanako@example.jp")
    forbidden = await reader.delete(f"/subscribers/{hanako}")
    assert forbidden.status_code == 403
    assert (await admin.get(f"/subscribers/{hanako}")).status_code == 200
    assert (await admin.delete("/subscribers/999999")).status_code == 404
    assert (await admin.delete("/subscribers/0")).status_code == 422


async def test_ds3_ds6_an_erased_subscribers_id_is_never_given_to_anybody_else(admin, runtime):
    """DS-3, DS-6: the audit log names the erased person by id; SQLite used to hand the newest
    erased id to the next subscriber, so that one id named two people. Ids never come back."""
    world = await world_with(runtime)
    first = await _person(admin, world.list_id, "first@example.jp")
    newest = await _person(admin, world.list_id, "newest@example.jp")
    assert (await admin.delete(f"/subscribers/{newest}")).status_code == 200
    after = await _person(admin, world.list_id, "after@example.jp")
    assert after not in (first, newest)
    assert after > newest
    async with runtime.sessionmaker() as session:
        audit = (await session.scalars(select(AuditLog).order_by(AuditLog.id))).all()
    erased = [a.target_id for a in audit if a.action == "subscriber.erase"]
    assert erased == [str(newest)]  # and no live subscriber has that id
    assert (await admin.get(f"/subscribers/{newest}")).status_code == 404
    # The same for the person's subscriptions, which the audit and exports cite too.
    async with runtime.sessionmaker() as session:
        ids = (await session.scalars(select(Subscription.id).order_by(Subscription.id))).all()
    assert len(ids) == 2
    assert ids[-1] == ids[0] + 2


async def test_ds3_erasure_removes_the_persons_mail_files_from_the_file_outbox(
    admin, runtime, tmp_path
):
    """DS-3: without an SMTP host every mail is an .eml file in outbox_dir; an erasure removes
    the person's files (found by their names, not their content) and reports how many."""
    world = await world_with(runtime)
    hanako = await _person(admin, world.list_id, "hanako@example.jp")
    transport = make_transport(
        runtime.settings.model_copy(update={"smtp_host": None}), runtime.recipient_hash
    )
    outbox_dir = runtime.settings.outbox_dir
    for to in ("hanako@example.jp", "hanako@example.jp", "taro@example.jp"):
        await transport.send("news@shodaku.example", to, f"To: {to}\r\n\r\nhello\r\n".encode())
    assert len(list(outbox_dir.glob("*.eml"))) == 3

    report = (await admin.delete(f"/subscribers/{hanako}")).json()

    assert report["deleted"]["mail_files"] == 2
    left = list(outbox_dir.glob("*.eml"))
    assert [b"taro@example.jp" in p.read_bytes() for p in left] == [True]
    assert not any(b"hanako" in p.read_bytes() for p in outbox_dir.iterdir())
    # Names carry a keyed hash, never the address.
    assert "taro" not in left[0].name
