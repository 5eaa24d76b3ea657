"""DS-6: every admin write and every export is in the audit log with the key that made it, and
GET /audit shows who did what, to what, and when, to admin keys only."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.models import AuditLog
from tests.factories import consent, make_world

SENDER = {
    "name": "株式会社承諾",
    "postal_address": "〒100-0001 東京都千代田区千代田1-1",
    "contact_email": "support@shodaku.example",
    "from_email": "news@shodaku.example",
}
TEMPLATE = {"name": "月刊", "subject": "12月号", "html": "<p>こんにちは</p>"}


async def everything(admin) -> list[dict[str, Any]]:
    """The whole audit log through the API, page by page."""
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = await admin.get("/audit", params=params)
        assert page.status_code == 200, page.text
        entries += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return entries


async def test_ds6_audit_log_says_who_did_what_to_what_and_when_newest_first(admin):
    before = datetime.now(UTC)
    sender = (await admin.post("/senders", json=SENDER)).json()
    await admin.patch(f"/senders/{sender['id']}", json={"from_name": "承諾ニュース"})
    news = await admin.post(
        "/lists",
        json={"name": "ニュース", "slug": "news", "sender_id": sender["id"], "purpose": "お知らせ"},
    )
    assert news.status_code == 201

    response = await admin.get("/audit")
    assert response.status_code == 200
    items = response.json()["items"]
    assert [(i["action"], i["target_type"], i["target_id"]) for i in items] == [
        ("list.create", "list", str(news.json()["id"])),
        ("sender.update", "sender", str(sender["id"])),
        ("sender.create", "sender", str(sender["id"])),
    ]
    who = {(i["api_key"]["name"], i["api_key"]["scope"]) for i in items}
    assert who == {("test admin", "admin")}
    assert all(isinstance(i["api_key"]["id"], int) for i in items)
    for item in items:
        assert before - timedelta(seconds=1) <= datetime.fromisoformat(item["occurred_at"])
    assert items[1]["details"] == {"fields": ["from_name"]}


async def test_ds6_audit_log_pages_by_cursor_without_gaps_or_repeats(admin):
    sender = (await admin.post("/senders", json=SENDER)).json()
    for n in range(7):
        await admin.patch(f"/senders/{sender['id']}", json={"from_name": f"名前{n}"})
    entries = await everything(admin)
    assert len(entries) == 8
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 8


async def test_ds6_audit_log_filters_by_action_domain_and_time(admin):
    sender = (await admin.post("/senders", json=SENDER)).json()
    await admin.post(
        "/lists",
        json={"name": "ニュース", "slug": "news", "sender_id": sender["id"], "purpose": "お知らせ"},
    )
    await admin.patch(f"/senders/{sender['id']}", json={"from_name": "承諾"})

    exact = (await admin.get("/audit", params={"action": "sender.update"})).json()["items"]
    assert [i["action"] for i in exact] == ["sender.update"]
    domain = (await admin.get("/audit", params={"action": "sender"})).json()["items"]
    assert [i["action"] for i in domain] == ["sender.update", "sender.create"]
    none = (await admin.get("/audit", params={"action": "send"})).json()["items"]
    assert none == []  # a domain is a whole word: "send" is not "sender"

    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert (await admin.get("/audit", params={"since": later})).json()["items"] == []
    earlier = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert len((await admin.get("/audit", params={"since": earlier})).json()["items"]) == 3


async def test_ds6_audit_log_is_for_admin_keys_only(app, admin, reader, client):
    refused = await reader.get("/audit")
    assert refused.status_code == 403
    assert refused.json()["error"] == "Forbidden"
    assert (await client.get("/api/v1/audit")).status_code == 401


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"action": "DROP TABLE audit_log"}, "action"),
        ({"since": "2026-11-01T00:00:00"}, "since"),  # no timezone: ambiguous
        ({"limit": 0}, "limit"),
    ],
)
async def test_ds6_audit_log_bad_query_is_a_422_naming_the_field(admin, params, field):
    response = await admin.get("/audit", params=params)
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"
    assert response.json()["detail"].startswith(field)


async def test_ds6_writes_and_exports_across_domains_are_audited(admin, runtime):
    """A representative write or export of each domain leaves its entry, with the admin key."""
    world = await make_world(runtime)
    await consent(runtime, world.list_id, "taro@example.jp")
    template = await admin.post("/templates", json=TEMPLATE)
    assert template.status_code == 201, template.text
    await admin.patch(f"/templates/{template.json()['id']}", json={"subject": "1月号"})
    person = await admin.post("/subscribers", json={"email": "hanako@example.jp"})
    await admin.patch(f"/subscribers/{person.json()['id']}", json={"name": "花子"})
    await admin.post(
        f"/lists/{world.list_id}/consents",
        json={
            "email": "jiro@example.jp",
            "basis": "business_relationship",
            "method": "api",
            "obtained_at": "2026-10-01T00:00:00+09:00",
            "evidence": {"transaction_ref": "ORDER-1", "transaction_date": "2026-10-01"},
        },
    )
    campaign = await admin.post(
        "/campaigns",
        json={"name": "12月号", "list_id": world.list_id, "template_id": world.template_id},
    )
    cid = campaign.json()["id"]
    for step in ("send", "pause", "resume", "cancel"):
        assert (await admin.post(f"/campaigns/{cid}/{step}")).status_code in (200, 202), step
    await admin.post("/optouts", json={"email": "jiro@example.jp", "channel": "letter"})
    assert (await admin.get("/consents/export")).status_code == 200
    assert (await admin.get(f"/campaigns/{cid}/compliance-report")).status_code == 200

    entries = await everything(admin)
    actions = [e["action"] for e in reversed(entries)]
    assert actions == [
        "template.create",
        "template.update",
        "subscriber.create",
        "subscriber.update",
        "consent.record",
        "campaign.create",
        "campaign.send",
        "campaign.pause",
        "campaign.resume",
        "campaign.cancel",
        "optout.record",
        "consent.export",
        "campaign.compliance_report",
    ]
    assert {e["api_key"]["name"] for e in entries} == {"test admin"}
    export = next(e for e in entries if e["action"] == "consent.export")
    assert export["target_type"] == "ledger"
    assert export["details"]["format"] == "csv"


def _write_operations(app: Any) -> list[tuple[str, str]]:
    operations = []
    for path, methods in app.openapi()["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method in methods:
            if method in ("post", "put", "patch", "delete"):
                # Any id will do: the key is refused before the id is looked up.
                operations.append((method.upper(), re.sub(r"\{[^}]+\}", "1", path)))
    return operations


async def test_ds6_every_write_operation_of_the_api_refuses_a_read_key(app, reader, runtime):
    """Walks the OpenAPI schema, so that a write added later is covered too: each needs an
    admin key, the key an admin write is audited with (DS-6)."""
    await make_world(runtime)
    operations = _write_operations(app)
    assert len(operations) >= 15  # senders, lists, subscribers, consents, campaigns...
    for method, path in operations:
        response = await reader.request(
            method,
            path.removeprefix("/api/v1"),
            json={},
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 403, f"{method} {path}: {response.status_code}"
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(AuditLog)) == 0
