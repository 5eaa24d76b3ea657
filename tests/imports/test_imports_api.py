"""POST /imports as JSON, GET /imports and /imports/{id}: the acquisition record is required and
kept (DS-4); each row is judged on its own (CC-4, SG-4); who may call what (DS-6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from app.models import ConsentEvent, ListImport, Subscription
from app.subscriptions.repository import GateVerdict
from tests.conftest import BASE_URL
from tests.factories import create_list, create_sender, gate
from tests.imports.conftest import (
    ACQUISITION,
    audit_of,
    counts,
    import_json,
    items_of,
    json_body,
    post_csv,
    subscriber,
    transaction_consent,
)


async def test_ds4_json_import_of_mixed_rows_reports_counts_and_stores_each_outcome(
    admin, runtime, sender, news
):
    """DS-4, CC-4, SG-4: consented, unconsented, invalid, duplicate and other-sender rows of
    one import each end where they should; the valid rows import despite the invalid ones."""
    other = await create_sender(admin, name="株式会社別会社")
    rows = [
        {"email": "Tanaka@Example.JP", "name": "田中太郎"},  # 1: unconsented
        {"email": "buyer@example.jp", "consent": transaction_consent(sender["id"])},  # 2
        {"email": "not-an-address"},  # 3: invalid
        {"email": "tanaka@example.jp", "name": "別人"},  # 4: duplicate of row 1
        {"email": "partner@example.jp", "consent": transaction_consent(other["id"])},  # 5
        {"email": "nosender@example.jp", "consent": transaction_consent(None)},  # 6
        "just-a-string",  # 7: invalid
        {"email": "plain@example.jp"},  # 8: unconsented
    ]
    report = await import_json(admin, news["id"], rows)

    assert (report["imported"], report["consented"], report["unconsented"]) == (5, 1, 4)
    assert (report["suppressed"], report["invalid_count"], report["rows"]) == (0, 3, 8)
    invalid = {e["row"]: e["error"] for e in report["invalid"]}
    assert set(invalid) == {3, 4, 7}
    assert invalid[3].startswith("email: not a valid email address")
    assert "row 1" in invalid[4]
    assert {n["row"] for n in report["notes"]} == {5, 6}

    items = await items_of(runtime, report["import_id"])
    assert {email: item.outcome for email, item in items.items()} == {
        "tanaka@example.jp": "unconsented",
        "buyer@example.jp": "consented",
        "partner@example.jp": "unconsented",
        "nosender@example.jp": "unconsented",
        "plain@example.jp": "unconsented",
    }
    assert items["tanaka@example.jp"].row_number == 1
    assert "sender" in (items["partner@example.jp"].detail or "")
    # The first row of a duplicate wins: its name, not the later one's.
    tanaka = await subscriber(runtime, "tanaka@example.jp")
    assert tanaka is not None
    assert tanaka.name == "田中太郎"
    buyer = await subscriber(runtime, "buyer@example.jp")
    assert buyer is not None
    assert await gate(runtime, buyer.id, news["id"]) is GateVerdict.MAILABLE
    for email in ("tanaka@example.jp", "partner@example.jp", "nosender@example.jp"):
        person = await subscriber(runtime, email)
        assert person is not None
        assert await gate(runtime, person.id, news["id"]) is GateVerdict.NO_CONSENT
    assert await counts(runtime) == {
        "imports": 1,
        "import_items": 5,
        "subscribers": 5,
        "subscriptions": 1,  # the consented row's only
        "consent_events": 1,
        "outbox_messages": 0,
    }


@pytest.mark.parametrize("field", list(ACQUISITION))
async def test_ds4_a_missing_acquisition_field_is_422_naming_it_and_nothing_is_stored(
    admin, runtime, news, field
):
    body = json_body(news["id"], [{"email": "someone@example.jp"}])
    del body["acquisition"][field]
    response = await admin.post("/imports", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"
    assert f"acquisition.{field}: Field required" in response.json()["detail"]
    assert set((await counts(runtime)).values()) == {0}


async def test_ds4_every_missing_field_is_named_at_once_and_blank_is_missing(admin, runtime, news):
    body = json_body(news["id"], [{"email": "someone@example.jp"}], provider_name="  ", items=[])
    del body["acquisition"]["provider_address"]
    detail = (await admin.post("/imports", json=body)).json()["detail"]
    assert "acquisition.provider_name" in detail
    assert "acquisition.provider_address" in detail
    assert "acquisition.items" in detail
    assert set((await counts(runtime)).values()) == {0}


@pytest.mark.parametrize(
    ("received_at", "why"),
    [
        ("2026-11-01T10:00:00", "timezone"),
        ((datetime.now(UTC) + timedelta(days=2)).isoformat(), "future"),
        ("yesterday", "datetime"),
    ],
    # Stable ids: the future one is computed when the tests are collected.
    ids=["naive", "future", "not-a-datetime"],
)
async def test_ds4_received_at_must_be_aware_and_past(admin, runtime, news, received_at, why):
    body = json_body(news["id"], [{"email": "someone@example.jp"}], received_at=received_at)
    response = await admin.post("/imports", json=body)
    assert response.status_code == 422
    assert "acquisition.received_at" in response.json()["detail"]
    assert why in response.json()["detail"]
    assert set((await counts(runtime)).values()) == {0}


async def test_ds4_received_at_takes_the_plain_date_of_receipt_through_both_doors(
    admin, runtime, news
):
    """DS-4: Art. 30 records the date a list was received; a plain ISO date is that, as JSON and
    as a CSV upload's form field, stored and echoed alike as 00:00 UTC of that day."""
    as_json = await admin.post(
        "/imports",
        json=json_body(news["id"], [{"email": "a@example.jp"}], received_at="2026-11-01"),
    )
    assert as_json.status_code == 201, as_json.text
    as_csv = await post_csv(
        admin, news["id"], b"email\r\nb@example.jp\r\n", received_at="2026-10-31"
    )
    assert as_csv.status_code == 201, as_csv.text
    for report, day in ((as_json.json(), "2026-11-01"), (as_csv.json(), "2026-10-31")):
        record = (await admin.get(f"/imports/{report['import_id']}")).json()
        assert record["acquisition"]["received_at"] == f"{day}T00:00:00Z"
    async with runtime.sessionmaker() as session:
        stored = (await session.scalars(select(ListImport).order_by(ListImport.id))).all()
    assert [r.received_at for r in stored] == [
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 10, 31, tzinfo=UTC),
    ]
    # Today's date is today somewhere east of UTC before UTC's midnight: never refused.
    today_east = (datetime.now(UTC) + timedelta(hours=14)).date().isoformat()
    today = await admin.post(
        "/imports",
        json=json_body(news["id"], [{"email": "c@example.jp"}], received_at=today_east),
    )
    assert today.status_code == 201, today.text


@pytest.mark.parametrize(
    ("received_at", "why"),
    [
        ((datetime.now(UTC) + timedelta(days=2)).date().isoformat(), "future"),
        ("2026-11-31", "date"),
        ("2026-11-1", "datetime"),
    ],
)
async def test_ds4_received_at_date_must_be_real_and_past(admin, runtime, news, received_at, why):
    body = json_body(news["id"], [{"email": "someone@example.jp"}], received_at=received_at)
    response = await admin.post("/imports", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"
    assert "acquisition.received_at" in response.json()["detail"]
    assert why in response.json()["detail"]
    assert set((await counts(runtime)).values()) == {0}


async def test_unknown_list_is_422_and_nothing_is_stored(admin, runtime):
    response = await admin.post("/imports", json=json_body(999, [{"email": "a@example.jp"}]))
    assert response.status_code == 422
    assert response.json() == {"error": "InvalidInput", "detail": "list_id: there is no list 999."}
    assert set((await counts(runtime)).values()) == {0}


async def test_bad_bodies_are_clear_4xx(admin, news):
    not_json = await admin.post(
        "/imports", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    assert not_json.json()["error"] == "ValidationError"
    text = await admin.post("/imports", content=b"a,b", headers={"Content-Type": "text/csv"})
    assert text.status_code == 415
    assert "multipart/form-data" in text.json()["detail"]
    empty = await admin.post("/imports", json=json_body(news["id"], []))
    assert empty.status_code == 422
    assert "rows" in empty.json()["detail"]


async def test_ds4_get_import_returns_the_acquisition_record_and_counts_kept_three_years(
    admin, runtime, news
):
    report = await import_json(
        admin, news["id"], [{"email": "a@example.jp"}, {"email": "b@example.jp"}, {"email": "x"}]
    )
    response = await admin.get(f"/imports/{report['import_id']}")
    assert response.status_code == 200
    record = response.json()
    assert record["list_id"] == news["id"]
    assert record["acquisition"] == {
        **ACQUISITION,
        "received_at": "2026-11-01T01:00:00Z",  # stored in UTC
    }
    assert record["state"] == "complete"
    assert record["counts"] == {
        "rows": 3,
        "imported": 2,
        "consented": 0,
        "unconsented": 2,
        "suppressed": 0,
        "invalid": 1,
    }
    assert record["recorded_by"].startswith("api_key:")
    created = datetime.fromisoformat(record["created_at"])
    kept = datetime.fromisoformat(record["retain_until"])
    assert kept.year == created.year + 3
    assert (kept.month, kept.day) == (created.month, created.day)

    items = (await admin.get(f"/imports/{report['import_id']}/items")).json()["items"]
    assert [(i["row"], i["email"], i["outcome"]) for i in items] == [
        (1, "a@example.jp", "unconsented"),
        (2, "b@example.jp", "unconsented"),
    ]
    assert (await admin.get("/imports/999")).status_code == 404
    assert (await admin.get("/imports/999")).json()["error"] == "NotFound"


async def test_list_imports_is_paginated_newest_first_and_filters_by_list(admin, sender, news):
    other = await create_list(admin, sender["id"], slug="other")
    ids = [
        (await import_json(admin, news["id"], [{"email": f"p{i}@example.jp"}]))["import_id"]
        for i in range(3)
    ]
    elsewhere = (await import_json(admin, other["id"], [{"email": "q@example.jp"}]))["import_id"]

    first = (await admin.get("/imports", params={"limit": 2})).json()
    assert [r["id"] for r in first["items"]] == [elsewhere, ids[2]]
    second = (
        await admin.get("/imports", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [r["id"] for r in second["items"]] == [ids[1], ids[0]]
    assert second["next_cursor"] is None
    only = (await admin.get("/imports", params={"list_id": other["id"]})).json()["items"]
    assert [r["id"] for r in only] == [elsewhere]


async def test_ds6_import_is_audited_with_counts_and_no_address(admin, runtime, news):
    report = await import_json(
        admin, news["id"], [{"email": "secret.person@example.jp", "name": "秘密"}]
    )
    entries = await audit_of(runtime, "import.create")
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.target_type, entry.target_id) == ("import", str(report["import_id"]))
    assert entry.api_key_id is not None
    assert entry.details["unconsented"] == 1
    assert entry.details["state"] == "complete"
    assert "secret" not in str(entry.details)


async def test_ds6_no_key_is_401_and_a_read_key_may_read_but_not_import(app, admin, reader, news):
    body = json_body(news["id"], [{"email": "a@example.jp"}])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"{BASE_URL}/api/v1") as anonymous:
        assert (await anonymous.post("/imports", json=body)).status_code == 401
        assert (await anonymous.get("/imports")).status_code == 401
        assert (await anonymous.get("/imports/1")).status_code == 401
    refused = await reader.post("/imports", json=body)
    assert refused.status_code == 403
    assert refused.json()["error"] == "Forbidden"
    report = await import_json(admin, news["id"], body["rows"])
    assert (await reader.get(f"/imports/{report['import_id']}")).status_code == 200
    assert (await reader.get("/imports")).json()["items"][0]["id"] == report["import_id"]


async def test_a_json_import_over_the_row_limit_is_refused_pointing_to_csv(admin, runtime, news):
    rows = [{"email": f"u{i}@example.jp"} for i in range(10_001)]
    response = await admin.post("/imports", json=json_body(news["id"], rows))
    assert response.status_code == 422
    assert "rows" in response.json()["detail"]
    async with runtime.sessionmaker() as session:
        assert (await session.scalars(select(ListImport))).first() is None


async def test_row_errors_name_consent_fields_in_json_terms(admin, runtime, sender, news):
    """CC-4: a row's consent is checked as POST /lists/{id}/consents checks one."""
    rows = [
        {"email": "a@example.jp", "consent": transaction_consent(sender["id"], basis="bogus")},
        {"email": "b@example.jp", "consent": transaction_consent(sender["id"], method="one_click")},
        {"email": "c@example.jp", "consent": transaction_consent("abc")},
        {"email": "d@example.jp", "mail": "typo"},
        {
            "email": "e@example.jp",
            "consent": transaction_consent(sender["id"], obtained_at="2026-13-01"),
        },
    ]
    report = await import_json(admin, news["id"], rows)
    errors = [e["error"] for e in report["invalid"]]
    assert errors[0].startswith("consent.basis:")
    assert errors[1].startswith("consent.method:")
    assert errors[2].startswith("consent.sender_id:")
    assert errors[3].startswith("mail: Extra inputs are not permitted")
    assert errors[4].startswith("consent.obtained_at:")
    assert report["imported"] == 0
    async with runtime.sessionmaker() as session:
        assert (await session.scalars(select(ConsentEvent))).first() is None
        assert (await session.scalars(select(Subscription))).first() is None
