"""DS-6: every admin write is audited with the key that made it, in the same unit of work;
reads are not; the audit log holds no full address."""

from __future__ import annotations

import json

from sqlalchemy import select

from app.auth.service import hash_key
from app.models import ApiKey
from tests.factories import audit_entries, consent_body, create_list, create_sender


async def _key_id(runtime, key):
    async with runtime.sessionmaker() as session:
        return await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(key)))


async def test_ds6_each_write_is_audited_with_the_key_and_without_full_addresses(
    admin, runtime, admin_key
):
    sender = await create_sender(admin)
    await admin.patch(f"/senders/{sender['id']}", json={"from_name": "x"})
    news = await create_list(admin, sender["id"])
    await admin.patch(f"/lists/{news['id']}", json={"name": "y"})
    person = (await admin.post("/subscribers", json={"email": "hanako@example.jp"})).json()
    await admin.patch(f"/subscribers/{person['id']}", json={"name": "花子"})
    consent = await admin.post(
        f"/lists/{news['id']}/consents", json=consent_body("taro@example.jp")
    )
    await admin.post("/optouts", json={"email": "taro@example.jp", "channel": "phone"})

    entries = await audit_entries(runtime)
    assert [(e.action, e.target_type, e.target_id) for e in entries] == [
        ("sender.create", "sender", str(sender["id"])),
        ("sender.update", "sender", str(sender["id"])),
        ("list.create", "list", str(news["id"])),
        ("list.update", "list", str(news["id"])),
        ("subscriber.create", "subscriber", str(person["id"])),
        ("subscriber.update", "subscriber", str(person["id"])),
        ("consent.record", "consent_event", str(consent.json()["event"]["id"])),
        ("optout.record", "subscriber", str(consent.json()["subscription"]["subscriber_id"])),
    ]
    key_id = await _key_id(runtime, admin_key)
    assert {e.api_key_id for e in entries} == {key_id}
    everything = json.dumps([e.details for e in entries], ensure_ascii=False)
    assert "hanako@example.jp" not in everything
    assert "taro@example.jp" not in everything
    assert "t***@example.jp" in everything
    assert admin_key not in everything


async def test_ds6_reads_are_not_audited(admin, reader, runtime, sender, news):
    """Plain reads are not audited; exports are (see tests/ledger/test_audit_log.py)."""
    before = len(await audit_entries(runtime))
    for client in (admin, reader):
        await client.get("/senders")
        await client.get(f"/senders/{sender['id']}")
        await client.get("/lists")
        await client.get(f"/lists/{news['id']}")
        await client.get("/subscribers")
        await client.get("/consents")
        await client.get("/suppressions", params={"email": "a@example.jp"})
    assert len(await audit_entries(runtime)) == before


async def test_ds6_a_refused_write_leaves_no_audit_entry(admin, runtime, sender, news):
    before = len(await audit_entries(runtime))
    await admin.post("/optouts", json={"email": "gone@example.jp", "channel": "phone"})
    assert len(await audit_entries(runtime)) == before + 1
    refused = await admin.post(
        f"/lists/{news['id']}/consents", json=consent_body("gone@example.jp")
    )
    assert refused.status_code == 409
    duplicate = await admin.post(
        "/lists",
        json={"name": "n", "slug": news["slug"], "sender_id": sender["id"], "purpose": "p"},
    )
    assert duplicate.status_code == 409
    assert len(await audit_entries(runtime)) == before + 1
