"""A key bound to a sender sees and acts on that sender's data only (DS-6; DS-1 and DS-3 for
disclosure and erasure).

Two senders, each with a list, people, consent, a template, a campaign with deliveries, an
import and an opt-out; a person subscribed to both. With a key bound to sender A, every admin
route of the app is called against sender B's objects: each answers 404 (or 422 for an id in
a body, 403 where a bound key may not act at all), and no answer, list or export holds any of
B's data. The routes are taken from the app itself, so a new route fails this test until its
case is written here (and so its scoping thought through).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.models import Delivery
from app.runtime import Runtime
from tests.admin.helpers import api, create_key
from tests.factories import SENDER, consent_body, create_list, create_sender, record_consent

TEMPLATE = {
    "subject": "{{ list.name }} のお知らせ",
    "html": "<html><body><p>{{ sender.name }}からのお知らせ</p></body></html>",
}
ACQUISITION = {
    "provider_address": "〒150-0001 東京都渋谷区神宮前1-2-3",
    "provider_representative": "代表取締役 鈴木一郎",
    "acquisition_circumstances": "提供元が展示会で名刺交換により取得した名簿",
    "received_at": "2026-11-01T10:00:00+09:00",
    "items": ["メールアドレス"],
}
# Strings that occur only in sender B's data: none may reach a key bound to sender A.
B_MARKERS = (
    "B-Sender",
    "b-sender.example",
    "B-List",
    "b-news",
    "b-only@b.example",
    "b-import@b.example",
    "B-Wording",
    "B-Evidence",
    "B-Template",
    "B-Campaign",
    "B-Provider",
    "B-Note",
)


@dataclass
class World:
    a: int
    b: int
    list_a: int
    list_b: int
    a_only: int
    b_only: int
    shared: int
    template_a: int
    template_b: int
    template_shared: int
    campaign_a: int
    campaign_b: int
    import_a: int
    import_b: int
    key_b: int
    ids: dict[str, int] = field(default_factory=dict)


async def _template(client: httpx.AsyncClient, name: str, sender_id: int | None) -> int:
    body: dict[str, Any] = {**TEMPLATE, "name": name}
    if sender_id is not None:
        body["sender_id"] = sender_id
    response = await client.post("/templates", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["sender_id"] == sender_id
    return int(response.json()["id"])


async def _campaign(admin: httpx.AsyncClient, name: str, list_id: int, template_id: int) -> int:
    body = {"name": name, "list_id": list_id, "template_id": template_id}
    response = await admin.post("/campaigns", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def _import(admin: httpx.AsyncClient, provider: str, list_id: int, email: str) -> int:
    body = {
        "acquisition": {**ACQUISITION, "provider_name": provider},
        "list_id": list_id,
        "rows": [{"email": email}],
    }
    response = await admin.post("/imports", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["import_id"])


@pytest.fixture
async def world(admin: httpx.AsyncClient, app: Any, runtime: Runtime) -> World:
    a = (await create_sender(admin, name="A-Sender 株式会社"))["id"]
    b = (
        await create_sender(
            admin,
            name="B-Sender 株式会社",
            from_email="news@b-sender.example",
            contact_email="support@b-sender.example",
        )
    )["id"]
    list_a = (await create_list(admin, a, slug="a-news", name="A-List"))["id"]
    list_b = (await create_list(admin, b, slug="b-news", name="B-List"))["id"]
    a_only = (await record_consent(admin, list_a, "a-only@a.example"))["subscription"]
    b_only = (
        await record_consent(
            admin,
            list_b,
            "b-only@b.example",
            consent_text="B-Wording: Bからのお知らせの受信に同意します。",
            evidence={"source": "B-Evidence booth"},
        )
    )["subscription"]
    await record_consent(admin, list_a, "shared@example.jp")
    shared = (
        await record_consent(
            admin,
            list_b,
            "shared@example.jp",
            consent_text="B-Wording: Bからのお知らせの受信に同意します。",
            evidence={"source": "B-Evidence booth"},
        )
    )["subscription"]
    optout = await admin.post(
        "/optouts",
        json={
            "email": "b-optout@b.example",
            "sender_id": b,
            "channel": "phone",
            "note": "B-Note",
        },
    )
    assert optout.status_code == 201, optout.text
    registered = await admin.post(
        f"/lists/{list_b}/consent-texts", json={"text": "B-Wording registered for B's own form"}
    )
    assert registered.status_code == 201, registered.text
    template_a = await _template(admin, "A-Template", a)
    template_b = await _template(admin, "B-Template", b)
    template_shared = await _template(admin, "Shared template", None)
    campaign_a = await _campaign(admin, "A-Campaign", list_a, template_a)
    campaign_b = await _campaign(admin, "B-Campaign", list_b, template_b)
    import_a = await _import(admin, "A-Provider", list_a, "a-import@a.example")
    import_b = await _import(admin, "B-Provider", list_b, "b-import@b.example")
    async with runtime.sessionmaker() as session, session.begin():
        now = datetime.now(UTC)
        for campaign, subscriber in (
            (campaign_a, shared["subscriber_id"]),
            (campaign_b, shared["subscriber_id"]),
            (campaign_b, b_only["subscriber_id"]),
        ):
            session.add(
                Delivery(
                    campaign_id=campaign,
                    subscriber_id=subscriber,
                    status="sent",
                    attempts=1,
                    sent_at=now,
                    smtp_response="250 B-Campaign ok" if campaign == campaign_b else "250 ok",
                )
            )
    # A key of sender B leaves audit entries that name B's data.
    key_b = await create_key(admin, name="B-Sender key", sender_ids=[b])
    async with api(app, key_b["key"]) as as_b:
        made = await as_b.post("/templates", json={**TEMPLATE, "name": "B-Template by its key"})
        assert made.json()["sender_id"] == b  # a bound key's template is its sender's
    return World(
        a=a,
        b=b,
        list_a=list_a,
        list_b=list_b,
        a_only=a_only["subscriber_id"],
        b_only=b_only["subscriber_id"],
        shared=shared["subscriber_id"],
        template_a=template_a,
        template_b=template_b,
        template_shared=template_shared,
        campaign_a=campaign_a,
        campaign_b=campaign_b,
        import_a=import_a,
        import_b=import_b,
        key_b=key_b["id"],
    )


@pytest.fixture
async def as_a(
    admin: httpx.AsyncClient, app: Any, world: World
) -> AsyncIterator[httpx.AsyncClient]:
    """An admin key bound to sender A."""
    created = await create_key(admin, name="A-only", sender_ids=[world.a])
    async with api(app, created["key"]) as client:
        yield client


@pytest.fixture
async def read_a(
    admin: httpx.AsyncClient, app: Any, world: World
) -> AsyncIterator[httpx.AsyncClient]:
    """A read key bound to sender A."""
    created = await create_key(admin, name="A-reader", scope="read", sender_ids=[world.a])
    async with api(app, created["key"]) as client:
        yield client


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    status: int
    json: Any = None
    params: dict[str, Any] | None = None


def calls_against_b(w: World) -> dict[tuple[str, str], list[Call]]:
    """For every admin route: the calls a key bound to A makes on B's objects, and the answer."""
    sender_body = {**SENDER, "name": "A-Sender 2"}
    list_body = {"name": "x", "slug": "x-news", "sender_id": w.b, "purpose": "案内のため"}
    template_body = {**TEMPLATE, "name": "x"}
    import_body = {
        "acquisition": {**ACQUISITION, "provider_name": "x"},
        "list_id": w.list_b,
        "rows": [{"email": "x@example.jp"}],
    }
    return {
        ("GET", "/senders"): [Call("GET", "/senders", 200)],
        ("POST", "/senders"): [Call("POST", "/senders", 403, json=sender_body)],
        ("GET", "/senders/{sender_id}"): [Call("GET", f"/senders/{w.b}", 404)],
        ("PATCH", "/senders/{sender_id}"): [
            Call("PATCH", f"/senders/{w.b}", 404, json={"name": "taken"})
        ],
        ("GET", "/lists"): [
            Call("GET", "/lists", 200),
            Call("GET", "/lists", 200, params={"sender_id": w.b}),
        ],
        ("POST", "/lists"): [Call("POST", "/lists", 422, json=list_body)],
        ("GET", "/lists/{list_id}/consent-texts"): [
            Call("GET", f"/lists/{w.list_b}/consent-texts", 404)
        ],
        ("POST", "/lists/{list_id}/consent-texts"): [
            Call("POST", f"/lists/{w.list_b}/consent-texts", 404, json={"text": "A's text"})
        ],
        ("POST", "/lists/{list_id}/consent-texts/{version}/retire"): [
            Call("POST", f"/lists/{w.list_b}/consent-texts/1/retire", 404)
        ],
        ("GET", "/lists/{list_id}"): [Call("GET", f"/lists/{w.list_b}", 404)],
        ("PATCH", "/lists/{list_id}"): [
            Call("PATCH", f"/lists/{w.list_b}", 404, json={"name": "taken"})
        ],
        ("GET", "/subscribers"): [
            Call("GET", "/subscribers", 200),
            Call("GET", "/subscribers", 200, params={"email": "b-only@b.example"}),
            Call("GET", "/subscribers", 200, params={"status": "active"}),
            Call("GET", "/subscribers", 404, params={"list_id": w.list_b}),
        ],
        ("POST", "/subscribers"): [
            Call("POST", "/subscribers", 403, json={"email": "b-only@b.example"})
        ],
        ("GET", "/subscribers/{subscriber_id}"): [
            Call("GET", f"/subscribers/{w.b_only}", 404),
            Call("GET", f"/subscribers/{w.shared}", 200),
        ],
        ("PATCH", "/subscribers/{subscriber_id}"): [
            Call("PATCH", f"/subscribers/{w.b_only}", 404, json={"name": "taken"})
        ],
        ("DELETE", "/subscribers/{subscriber_id}"): [
            Call("DELETE", f"/subscribers/{w.b_only}", 404),
            Call("DELETE", f"/subscribers/{w.shared}", 409),
        ],
        ("GET", "/subscribers/{subscriber_id}/export"): [
            Call("GET", f"/subscribers/{w.b_only}/export", 404),
            Call("GET", f"/subscribers/{w.shared}/export", 200),
        ],
        ("POST", "/lists/{list_id}/consents"): [
            Call("POST", f"/lists/{w.list_b}/consents", 404, json=consent_body("x@example.jp"))
        ],
        ("GET", "/consents"): [
            Call("GET", "/consents", 200),
            Call("GET", "/consents", 200, params={"email": "b-only@b.example"}),
            Call("GET", "/consents", 404, params={"list_id": w.list_b}),
        ],
        ("GET", "/consents/export"): [
            Call("GET", "/consents/export", 200, params={"format": "json"}),
            Call("GET", "/consents/export", 200, params={"format": "csv"}),
            Call("GET", "/consents/export", 404, params={"list_id": w.list_b}),
        ],
        ("GET", "/suppressions"): [
            Call("GET", "/suppressions", 200, params={"email": "shared@example.jp"})
        ],
        ("POST", "/optouts"): [
            Call(
                "POST",
                "/optouts",
                422,
                json={"email": "shared@example.jp", "list_id": w.list_b, "channel": "phone"},
            ),
            Call(
                "POST",
                "/optouts",
                422,
                json={"email": "shared@example.jp", "sender_id": w.b, "channel": "phone"},
            ),
        ],
        ("GET", "/templates"): [Call("GET", "/templates", 200)],
        ("POST", "/templates"): [
            Call("POST", "/templates", 422, json={**template_body, "sender_id": w.b})
        ],
        ("GET", "/templates/{template_id}"): [
            Call("GET", f"/templates/{w.template_b}", 404),
            Call("GET", f"/templates/{w.template_shared}", 404),
        ],
        ("PATCH", "/templates/{template_id}"): [
            Call("PATCH", f"/templates/{w.template_b}", 404, json={"name": "taken"})
        ],
        ("POST", "/templates/{template_id}/preview"): [
            Call("POST", f"/templates/{w.template_b}/preview", 404, json={}),
            Call(
                "POST",
                f"/templates/{w.template_a}/preview",
                404,
                json={"subscriber_id": w.b_only},
            ),
            Call("POST", f"/templates/{w.template_a}/preview", 404, json={"list_id": w.list_b}),
            Call(
                "POST",
                f"/templates/{w.template_a}/preview",
                200,
                json={"subscriber_id": w.shared},
            ),
        ],
        ("GET", "/campaigns"): [Call("GET", "/campaigns", 200)],
        ("POST", "/campaigns"): [
            Call(
                "POST",
                "/campaigns",
                422,
                json={"name": "x", "list_id": w.list_b, "template_id": w.template_a},
            ),
            Call(
                "POST",
                "/campaigns",
                422,
                json={"name": "x", "list_id": w.list_a, "template_id": w.template_b},
            ),
            Call(
                "POST",
                "/campaigns",
                422,
                json={"name": "x", "list_id": w.list_a, "template_id": w.template_shared},
            ),
        ],
        ("GET", "/campaigns/{campaign_id}"): [Call("GET", f"/campaigns/{w.campaign_b}", 404)],
        ("POST", "/campaigns/{campaign_id}/send"): [
            Call("POST", f"/campaigns/{w.campaign_b}/send", 404)
        ],
        ("POST", "/campaigns/{campaign_id}/pause"): [
            Call("POST", f"/campaigns/{w.campaign_b}/pause", 404)
        ],
        ("POST", "/campaigns/{campaign_id}/resume"): [
            Call("POST", f"/campaigns/{w.campaign_b}/resume", 404)
        ],
        ("POST", "/campaigns/{campaign_id}/cancel"): [
            Call("POST", f"/campaigns/{w.campaign_b}/cancel", 404)
        ],
        ("GET", "/campaigns/{campaign_id}/deliveries"): [
            Call("GET", f"/campaigns/{w.campaign_b}/deliveries", 404)
        ],
        ("GET", "/campaigns/{campaign_id}/compliance-report"): [
            Call("GET", f"/campaigns/{w.campaign_b}/compliance-report", 404),
            Call(
                "GET",
                f"/campaigns/{w.campaign_a}/compliance-report",
                200,
                params={"format": "json"},
            ),
        ],
        ("GET", "/imports"): [
            Call("GET", "/imports", 200),
            Call("GET", "/imports", 200, params={"list_id": w.list_b}),
        ],
        ("POST", "/imports"): [Call("POST", "/imports", 422, json=import_body)],
        ("GET", "/imports/{import_id}"): [Call("GET", f"/imports/{w.import_b}", 404)],
        ("GET", "/imports/{import_id}/items"): [Call("GET", f"/imports/{w.import_b}/items", 404)],
        ("GET", "/audit"): [Call("GET", "/audit", 200)],
        # Keys are managed by keys bound to no sender only: a bound key could escalate.
        ("GET", "/api-keys"): [Call("GET", "/api-keys", 403)],
        ("POST", "/api-keys"): [Call("POST", "/api-keys", 403, json={"name": "x"})],
        ("POST", "/api-keys/{key_id}/revoke"): [Call("POST", f"/api-keys/{w.key_b}/revoke", 403)],
        ("DELETE", "/api-keys/{key_id}"): [Call("DELETE", f"/api-keys/{w.key_b}", 403)],
    }


def admin_routes(app: Any) -> set[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, operations in paths.items()
        if path.startswith("/api/v1/")
        for method in operations
    }


def assert_nothing_of_b(response: httpx.Response, call: Call) -> None:
    for marker in B_MARKERS:
        assert marker not in response.text, (call, marker, response.text[:2000])


async def test_every_admin_route_answers_404_for_another_senders_data(
    app: Any, world: World, as_a: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    """DS-6: with a key bound to A, nothing of B is reachable or shown, whatever the route."""
    calls = calls_against_b(world)
    missing = admin_routes(app) - set(calls)
    assert not missing, f"admin routes without a sender-scope case (DS-6): {sorted(missing)}"
    assert set(calls) <= admin_routes(app)
    for route, cases in calls.items():
        for call in cases:
            response = await as_a.request(call.method, call.url, json=call.json, params=call.params)
            assert response.status_code == call.status, (route, call, response.text)
            if response.status_code >= 400:
                assert response.json()["error"] in {
                    "NotFound",
                    "ValidationError",
                    "InvalidInput",
                    "Forbidden",
                    "Conflict",
                }
            assert_nothing_of_b(response, call)

    # B's data is all still there, untouched, for a key that may see it.
    b_only = (await admin.get(f"/subscribers/{world.b_only}")).json()
    assert [s["status"] for s in b_only["subscriptions"]] == ["active"]
    shared = (await admin.get(f"/subscribers/{world.shared}")).json()
    assert {s["list_id"] for s in shared["subscriptions"]} == {world.list_a, world.list_b}
    assert (await admin.get(f"/senders/{world.b}")).json()["name"] == "B-Sender 株式会社"
    assert (await admin.get(f"/lists/{world.list_b}")).json()["name"] == "B-List"
    assert (await admin.get(f"/templates/{world.template_b}")).json()["name"] == "B-Template"
    assert (await admin.get(f"/campaigns/{world.campaign_b}")).json()["status"] == "draft"


async def test_the_markers_are_there_for_a_key_of_every_sender(
    world: World, admin: httpx.AsyncClient
) -> None:
    """The test above is not vacuous: a key bound to no sender sees every marker of B."""
    seen = "".join(
        [
            (await admin.get("/senders")).text,
            (await admin.get("/lists")).text,
            (await admin.get("/subscribers")).text,
            (await admin.get("/consents/export", params={"format": "json"})).text,
            (await admin.get("/templates")).text,
            (await admin.get("/campaigns")).text,
            (await admin.get("/imports")).text,
            (await admin.get(f"/campaigns/{world.campaign_b}/deliveries")).text,
            (await admin.get("/audit")).text,
        ]
    )
    for marker in B_MARKERS:
        assert marker in seen, marker


async def test_a_bound_key_sees_its_own_senders_data(world: World, as_a: httpx.AsyncClient) -> None:
    lists = (await as_a.get("/lists")).json()["items"]
    assert [item["id"] for item in lists] == [world.list_a]
    people = {p["email"] for p in (await as_a.get("/subscribers")).json()["items"]}
    assert people == {"a-only@a.example", "shared@example.jp", "a-import@a.example"}
    shared = (await as_a.get(f"/subscribers/{world.shared}")).json()
    assert [s["list_id"] for s in shared["subscriptions"]] == [world.list_a]
    templates = (await as_a.get("/templates")).json()["items"]
    assert [t["id"] for t in templates] == [world.template_a]
    campaigns = (await as_a.get("/campaigns")).json()["items"]
    assert [c["id"] for c in campaigns] == [world.campaign_a]
    imports = (await as_a.get("/imports")).json()["items"]
    assert [i["id"] for i in imports] == [world.import_a]
    assert (await as_a.get(f"/campaigns/{world.campaign_a}/deliveries")).status_code == 200


async def test_disclosure_of_a_shared_person_holds_only_the_keys_senders_records(
    world: World, read_a: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    """DS-1: a sender discloses what it holds of the person, never another sender's records."""
    mine = (await read_a.get(f"/subscribers/{world.shared}/export")).json()
    everything = (await admin.get(f"/subscribers/{world.shared}/export")).json()
    assert {s["sender_id"] for s in mine["subscriptions"]} == {world.a}
    assert {e["sender_id"] for e in mine["consent_events"]} == {world.a}
    assert {d["sender_id"] for d in mine["deliveries"]} == {world.a}
    assert {s["sender_id"] for s in everything["subscriptions"]} == {world.a, world.b}
    assert {d["sender_id"] for d in everything["deliveries"]} == {world.a, world.b}
    assert mine["subscriber"]["email"] == "shared@example.jp"


async def test_a_read_key_bound_to_a_sender_exports_only_its_ledger(
    world: World, read_a: httpx.AsyncClient
) -> None:
    """DS-6, CR-3: the consent export of a bound read key is its senders' events only."""
    export = await read_a.get("/consents/export", params={"format": "json"})
    assert export.status_code == 200
    events = export.json()
    assert events
    assert {e["sender_id"] for e in events} == {world.a}
    assert (await read_a.post("/optouts", json={"email": "x@example.jp"})).status_code == 403


async def test_every_sender_opt_out_by_a_bound_key_covers_its_senders_only(
    world: World, as_a: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    """OO-5 with DS-6: "every sender" means every sender the key acts for."""
    response = await as_a.post("/optouts", json={"email": "shared@example.jp", "channel": "letter"})
    assert response.status_code == 201, response.text
    assert {e["sender_id"] for e in response.json()["effects"]} == {world.a}
    shared = (await admin.get(f"/subscribers/{world.shared}")).json()
    statuses = {s["list_id"]: s["status"] for s in shared["subscriptions"]}
    assert statuses == {world.list_a: "unsubscribed", world.list_b: "active"}


async def test_a_bound_key_erases_a_person_only_its_senders_hold(
    world: World, as_a: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    """DS-3: a person no other sender holds is erased by the bound key; one shared with B is
    refused (409), and B's records of them stay."""
    erased = await as_a.delete(f"/subscribers/{world.a_only}")
    assert erased.status_code == 200, erased.text
    assert (await admin.get(f"/subscribers/{world.a_only}")).status_code == 404
    refused = await as_a.delete(f"/subscribers/{world.shared}")
    assert refused.status_code == 409
    assert "B-Sender" not in refused.text
    assert (await admin.get(f"/subscribers/{world.shared}")).status_code == 200


async def test_suppressions_of_another_sender_are_not_shown(
    world: World, as_a: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    """A bound key sees global suppressions and its own senders', never B's."""
    theirs = await admin.get("/suppressions", params={"email": "b-optout@b.example"})
    assert theirs.json()["suppressed"] is True
    mine = await as_a.get("/suppressions", params={"email": "b-optout@b.example"})
    assert mine.status_code == 200
    assert mine.json()["suppressed"] is False
    assert mine.json()["suppressions"] == []


async def test_audit_log_of_a_bound_key_holds_its_senders_keys_entries(
    world: World, as_a: httpx.AsyncClient
) -> None:
    await as_a.patch(f"/lists/{world.list_a}", json={"name": "A-List renamed"})
    entries = (await as_a.get("/audit")).json()["items"]
    assert [e["action"] for e in entries] == ["list.update"]


async def test_templates_of_a_bound_key_are_its_senders(
    world: World, as_a: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    """A bound key's template is its sender's; a campaign cannot use another sender's."""
    made = await as_a.post("/templates", json={**TEMPLATE, "name": "A-Template 2"})
    assert made.status_code == 201
    assert made.json()["sender_id"] == world.a
    wrong = await admin.post(
        "/campaigns",
        json={"name": "x", "list_id": world.list_b, "template_id": made.json()["id"]},
    )
    assert wrong.status_code == 422
    assert "template_id" in wrong.json()["detail"]
    shared_ok = await admin.post(
        "/campaigns",
        json={"name": "x", "list_id": world.list_b, "template_id": world.template_shared},
    )
    assert shared_ok.status_code == 201
