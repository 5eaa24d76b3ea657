"""DS-1 (APPI Art. 33): GET /subscribers/{id}/export discloses everything held about a person,
as JSON: profile, subscriptions, consent and opt-out events with evidence and wording, their
holds (CR-2), suppressions, deliveries and the import the address came from (DS-4). The export
is audited (DS-6)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.auth.service import hash_key
from app.models import ApiKey, AuditLog, ImportItem, ListImport
from app.senders.retention_policy import end_of_day_jst
from tests.factories import CONSENT_WORDING, consent, consent_body
from tests.privacy.conftest import send_campaign, utc, world_with

NOW = "2027-01-10T03:00:00Z"


async def _import_record(runtime: Any, list_id: int, email: str) -> int:
    """An import of a list received from a third party that brought the address (DS-4)."""
    async with runtime.sessionmaker() as session, session.begin():
        source = ListImport(
            list_id=list_id,
            provider_name="株式会社名簿提供",
            provider_address="〒150-0001 東京都渋谷区神宮前1-1",
            provider_representative="代表取締役 名簿太郎",
            acquisition_circumstances="展示会の来場者アンケートで本人から取得",
            received_at=utc("2027-01-05T00:00"),
            items={"fields": ["email", "name"]},
            recorded_by="api_key:1",
            retain_until=utc("2030-01-10T03:00"),
        )
        session.add(source)
        await session.flush()
        session.add(
            ImportItem(import_id=source.id, row_number=2, email=email, outcome="unconsented")
        )
        session.add(
            ImportItem(
                import_id=source.id, row_number=3, email="other@example.jp", outcome="unconsented"
            )
        )
        return source.id


@pytest.mark.usefixtures("smtp_server")  # it sends a campaign, reading none of it
async def test_ds1_the_export_holds_everything_about_the_person_and_nobody_else(
    admin, app, reader, runtime, read_key, clock
):
    """DS-1: the profile, the subscription, the grant with its evidence and exact wording, the
    operator's opt-out with its channel and note, each event's hold (CR-2), the suppression,
    the delivery with the event it relied on, and the acquisition record of the import; the
    other person's address appears nowhere. A read key may export; the export is audited
    without the address (DS-6)."""
    world = await world_with(runtime)
    created = await admin.post(
        "/subscribers",
        json={
            "email": "hanako@example.jp",
            "name": "山田花子",
            "attributes": {"company": "承諾商事"},
        },
    )
    hanako = created.json()["id"]
    grant = await admin.post(
        f"/lists/{world.list_id}/consents",
        json=consent_body("hanako@example.jp", ip="203.0.113.5", source_url="https://x.example/f"),
    )
    assert grant.status_code == 201, grant.text
    grant_id = grant.json()["event"]["id"]
    await consent(runtime, world.list_id, "other@example.jp")
    campaign_id = await send_campaign(admin, app, world)
    optout = await admin.post(
        "/optouts",
        json={
            "email": "hanako@example.jp",
            "list_id": world.list_id,
            "channel": "letter",
            "note": "はがきで配信停止の依頼",
        },
    )
    assert optout.status_code == 201, optout.text
    import_id = await _import_record(runtime, world.list_id, "hanako@example.jp")

    response = await reader.get(f"/subscribers/{hanako}/export")

    assert response.status_code == 200, response.text
    export = response.json()
    assert export["exported_at"] == NOW
    assert export["subscriber"] == {
        "id": hanako,
        "email": "hanako@example.jp",
        "name": "山田花子",
        "attributes": {"company": "承諾商事"},
        "created_at": NOW,
        "updated_at": NOW,
    }
    [subscription] = export["subscriptions"]
    assert subscription["list_id"] == world.list_id
    assert subscription["list_name"] == "承諾ニュース"
    assert subscription["sender_name"] == "株式会社承諾"
    assert (subscription["status"], subscription["basis"]) == ("unsubscribed", "opt_in")

    granted, withdrawn = export["consent_events"]
    assert granted["id"] == grant_id
    assert granted["kind"] == "grant"
    assert granted["basis"] == "opt_in"
    assert granted["evidence"] == {"source": "展示会ブースの申込用紙"}
    assert granted["consent_text"] == CONSENT_WORDING
    assert (granted["ip"], granted["source_url"]) == ("203.0.113.5", "https://x.example/f")
    assert granted["purpose"] == "新製品とイベントのお知らせ"
    assert withdrawn["kind"] == "withdraw"
    assert (withdrawn["channel"], withdrawn["note"]) == ("letter", "はがきで配信停止の依頼")
    # CR-2: sending stopped today; held three years (the default) to the end of that day (JST).
    hold = end_of_day_jst(utc("2027-01-10T03:00") + timedelta(days=1095))
    assert {granted["retain_until"], withdrawn["retain_until"]} == {
        hold.isoformat().replace("+00:00", "Z")
    }

    assert [(s["scope"], s["list_id"], s["reason"]) for s in export["suppressions"]] == [
        ("list", world.list_id, "optout_request")
    ]
    [delivery] = export["deliveries"]
    assert delivery["campaign_id"] == campaign_id
    assert delivery["campaign_name"] == "月刊"
    assert delivery["status"] == "sent"
    assert delivery["sent_at"] == NOW
    assert delivery["smtp_response"]
    assert delivery["consent_event_id"] == grant_id
    [source] = export["imports"]
    assert source["import_id"] == import_id
    assert source["provider_name"] == "株式会社名簿提供"
    assert source["provider_representative"] == "代表取締役 名簿太郎"
    assert source["acquisition_circumstances"] == "展示会の来場者アンケートで本人から取得"
    assert source["received_at"] == "2027-01-05T00:00:00Z"
    assert (source["row_number"], source["outcome"]) == (2, "unconsented")

    assert "other@example.jp" not in response.text

    async with runtime.sessionmaker() as session:
        entry = (
            await session.scalars(select(AuditLog).where(AuditLog.action == "subscriber.export"))
        ).one()
        key_id = await session.scalar(
            select(ApiKey.id).where(ApiKey.key_hash == hash_key(read_key))
        )
    assert (entry.target_type, entry.target_id, entry.api_key_id) == (
        "subscriber",
        str(hanako),
        key_id,
    )
    assert entry.details["consent_events"] == 2
    assert "hanako" not in json.dumps(entry.details, ensure_ascii=False)


async def test_ds1_export_of_an_unknown_person_is_404_and_needs_a_key(admin, client, runtime):
    """DS-1: an unknown id is 404 with the error body, and nothing is audited; no key is 401."""
    response = await admin.get("/subscribers/424242/export")
    assert response.status_code == 404
    assert response.json() == {"error": "NotFound", "detail": "There is no subscriber 424242."}
    assert (await client.get("/api/v1/subscribers/1/export")).status_code == 401
    async with runtime.sessionmaker() as session:
        audited = (await session.scalars(select(AuditLog.action))).all()
    assert "subscriber.export" not in audited
