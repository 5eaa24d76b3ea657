"""POST /lists/{id}/consents and the ledger: consent is evidence (CC-1, CC-4, CR-1, CR-3, OO-6)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.models import ConsentText
from app.subscriptions.repository import GateVerdict
from tests.factories import (
    CONSENT_WORDING,
    FULL_EVIDENCE,
    consent_body,
    count_events,
    create_list,
    gate,
    record_consent,
)

BASES = ["opt_in", "written_notice", "business_relationship", "published_address"]


@pytest.mark.parametrize("basis", BASES)
async def test_cc4_each_basis_with_full_evidence_is_recorded_and_mailable(
    admin, runtime, admin_key, news, basis
):
    response = await admin.post(
        f"/lists/{news['id']}/consents",
        json=consent_body("Customer@Example.JP", basis, ip="203.0.113.5", user_agent="Mozilla/5.0"),
    )
    assert response.status_code == 201, response.text
    event, subscription = response.json()["event"], response.json()["subscription"]
    assert (event["kind"], event["basis"], event["email"]) == (
        "grant",
        basis,
        "customer@example.jp",
    )
    assert (
        event["evidence"].items()
        >= {k: v for k, v in FULL_EVIDENCE[basis].items() if k != "seen_at"}.items()
    )
    assert event["purpose"] == news["purpose"]  # CC-5: the purpose is recorded with the consent
    assert event["recorded_by"].startswith("api_key:")
    assert (event["ip"], event["user_agent"]) == ("203.0.113.5", "Mozilla/5.0")
    assert (subscription["status"], subscription["basis"]) == ("active", basis)
    assert subscription["gate"] == "mailable"
    verdict = await gate(runtime, subscription["subscriber_id"], news["id"])
    assert verdict is GateVerdict.MAILABLE


MISSING = [
    ("opt_in", "source"),
    ("written_notice", "received_on"),
    ("written_notice", "received_by"),
    ("written_notice", "document_ref"),
    ("business_relationship", "transaction_ref"),
    ("business_relationship", "transaction_date"),
    ("published_address", "url"),
    ("published_address", "seen_at"),
    ("published_address", "no_refusal_notice"),
]


@pytest.mark.parametrize(("basis", "field"), MISSING)
async def test_cc4_missing_evidence_is_422_naming_the_field_and_nothing_is_stored(
    admin, runtime, news, basis, field
):
    body = consent_body("someone@example.jp", basis)
    del body["evidence"][field]
    response = await admin.post(f"/lists/{news['id']}/consents", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidInput"
    assert f"evidence.{field}" in response.json()["detail"]
    assert await count_events(runtime) == 0
    assert (await admin.get("/subscribers")).json()["items"] == []


async def test_cc4_every_missing_field_is_named_at_once(admin, news):
    body = consent_body("someone@example.jp", "business_relationship", evidence={})
    detail = (await admin.post(f"/lists/{news['id']}/consents", json=body)).json()["detail"]
    assert "evidence.transaction_ref" in detail
    assert "evidence.transaction_date" in detail


async def test_cc4_an_address_published_beside_a_refusal_notice_is_refused(admin, runtime, news):
    body = consent_body("info@corp.example.jp", "published_address")
    body["evidence"]["no_refusal_notice"] = False
    response = await admin.post(f"/lists/{news['id']}/consents", json=body)
    assert response.status_code == 422
    assert "evidence.no_refusal_notice" in response.json()["detail"]
    assert "広告メールお断り" in response.json()["detail"]
    assert await count_events(runtime) == 0


async def test_cr1_opt_in_needs_the_wording_or_the_circumstances(admin, runtime, news):
    body = consent_body("someone@example.jp", "opt_in")
    del body["consent_text"]
    response = await admin.post(f"/lists/{news['id']}/consents", json=body)
    assert response.status_code == 422
    assert "consent_text or evidence.circumstances" in response.json()["detail"]
    assert await count_events(runtime) == 0

    body["evidence"]["circumstances"] = "電話で口頭にて同意を確認(通話記録 2026-06-01 14:05)"
    assert (await admin.post(f"/lists/{news['id']}/consents", json=body)).status_code == 201


async def test_wrong_evidence_types_are_named(admin, news):
    body = consent_body("someone@example.jp", "written_notice")
    body["evidence"]["received_on"] = "last tuesday"
    response = await admin.post(f"/lists/{news['id']}/consents", json=body)
    assert response.status_code == 422
    assert "evidence.received_on" in response.json()["detail"]


@pytest.mark.parametrize(
    ("obtained_at", "why"),
    [
        ("2026-06-01T10:00:00", "timezone"),
        ((datetime.now(UTC) + timedelta(days=1)).isoformat(), "future"),
        ("yesterday", "datetime"),
    ],
    # Stable ids: the future one is computed when the tests are collected.
    ids=["naive", "future", "not-a-datetime"],
)
async def test_obtained_at_must_be_aware_and_not_in_the_future(
    admin, runtime, news, obtained_at, why
):
    body = consent_body("someone@example.jp", obtained_at=obtained_at)
    response = await admin.post(f"/lists/{news['id']}/consents", json=body)
    assert response.status_code == 422
    assert "obtained_at" in response.json()["detail"]
    assert why in response.json()["detail"]
    assert await count_events(runtime) == 0


@pytest.mark.parametrize("field", ["basis", "method"])
async def test_basis_and_method_come_from_the_fixed_vocabularies(admin, news, field):
    body = {**consent_body("a@example.jp"), field: "vibes"}
    response = await admin.post(f"/lists/{news['id']}/consents", json=body)
    assert response.status_code == 422
    assert field in response.json()["detail"]


async def test_an_opt_out_channel_is_not_a_way_of_consenting(admin, news):
    response = await admin.post(
        f"/lists/{news['id']}/consents", json=consent_body("a@example.jp", method="one_click")
    )
    assert response.status_code == 422
    assert "method" in response.json()["detail"]


async def test_oo6_consent_on_a_suppressed_address_is_409_and_nothing_is_stored(
    admin, runtime, news
):
    await admin.post("/optouts", json={"email": "gone@example.jp", "channel": "phone"})
    before = await count_events(runtime)
    for basis in BASES:
        response = await admin.post(
            f"/lists/{news['id']}/consents", json=consent_body("Gone@Example.jp", basis)
        )
        assert response.status_code == 409
        assert response.json()["error"] == "AddressSuppressed"
    assert await count_events(runtime) == before
    status = (await admin.get("/suppressions", params={"email": "gone@example.jp"})).json()
    assert status["suppressed"] is True


async def test_unknown_list_is_404_and_nothing_is_stored(admin, runtime):
    response = await admin.post("/lists/999/consents", json=consent_body("a@example.jp"))
    assert response.status_code == 404
    assert response.json() == {"error": "NotFound", "detail": "There is no list 999."}
    assert await count_events(runtime) == 0


async def test_cr1_the_ledger_is_append_only_grant_then_optout_both_kept(admin, news):
    grant = (await record_consent(admin, news["id"], "taro@example.jp"))["event"]
    optout = await admin.post(
        "/optouts",
        json={
            "email": "taro@example.jp",
            "list_id": news["id"],
            "channel": "letter",
            "note": "葉書",
        },
    )
    assert optout.status_code == 201
    events = (await admin.get("/consents", params={"email": "taro@example.jp"})).json()["items"]
    assert [e["kind"] for e in events] == ["withdraw", "grant"]
    assert events[1] == grant  # the grant is unchanged by the withdrawal
    assert (events[0]["method"], events[0]["channel"], events[0]["note"]) == (
        "letter",
        "letter",
        "葉書",
    )


async def test_cr1_each_wording_is_stored_once_and_referenced_by_hash(admin, news, runtime):
    first = (await record_consent(admin, news["id"], "a@example.jp"))["event"]
    second = (await record_consent(admin, news["id"], "b@example.jp"))["event"]
    # Both events name the wording by the SHA-256 of its exact text…
    expected = hashlib.sha256(CONSENT_WORDING.encode()).hexdigest()
    assert first["consent_text_hash"] == expected
    assert second["consent_text_hash"] == expected
    # …and the text itself is stored once, under that hash.
    async with runtime.sessionmaker() as session:
        stored = (await session.scalars(select(ConsentText))).all()
    assert [(t.hash, t.text) for t in stored] == [(expected, CONSENT_WORDING)]


async def test_consents_newest_first_with_filters_and_cursor(admin, sender, news):
    other = await create_list(admin, sender["id"], slug="other")
    ids = []
    for i in range(4):
        ids.append((await record_consent(admin, news["id"], f"n{i}@example.jp"))["event"]["id"])
    other_id = (await record_consent(admin, other["id"], "o@example.jp"))["event"]["id"]

    everything = (await admin.get("/consents")).json()
    assert [e["id"] for e in everything["items"]] == [other_id, *reversed(ids)]

    first = (await admin.get(f"/consents?list_id={news['id']}&limit=3")).json()
    assert [e["id"] for e in first["items"]] == list(reversed(ids))[:3]
    rest = (await admin.get(f"/consents?list_id={news['id']}&cursor={first['next_cursor']}")).json()
    assert [e["id"] for e in rest["items"]] == [ids[0]]
    assert rest["next_cursor"] is None

    by_email = (await admin.get("/consents", params={"email": "N2@example.jp"})).json()["items"]
    assert [e["id"] for e in by_email] == [ids[2]]

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await admin.get("/consents", params={"since": future})).json()["items"] == []
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert len((await admin.get("/consents", params={"since": past})).json()["items"]) == 5


async def test_a_sender_wide_optout_shows_in_each_list_of_the_sender(admin, sender, news):
    other = await create_list(admin, sender["id"], slug="other")
    await record_consent(admin, news["id"], "taro@example.jp")
    await admin.post(
        "/optouts", json={"email": "taro@example.jp", "sender_id": sender["id"], "channel": "phone"}
    )
    for list_id in (news["id"], other["id"]):
        kinds = [
            e["kind"] for e in (await admin.get(f"/consents?list_id={list_id}")).json()["items"]
        ]
        assert kinds[0] == "withdraw"


async def test_cr3_export_csv_has_evidence_and_wording(admin, sender, news):
    other = await create_list(admin, sender["id"], slug="other")
    await record_consent(admin, news["id"], "a@example.jp")
    await record_consent(admin, news["id"], "b@example.jp", "business_relationship")
    await record_consent(admin, other["id"], "c@example.jp")
    await admin.post(
        "/optouts", json={"email": "a@example.jp", "list_id": news["id"], "channel": "email"}
    )

    response = await admin.get("/consents/export", params={"list_id": news["id"], "format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(r["kind"], r["email"]) for r in rows] == [
        ("grant", "a@example.jp"),
        ("grant", "b@example.jp"),
        ("withdraw", "a@example.jp"),
    ]
    assert rows[0]["consent_text"] == CONSENT_WORDING
    assert json.loads(rows[0]["evidence"]) == FULL_EVIDENCE["opt_in"]
    assert json.loads(rows[1]["evidence"]) == FULL_EVIDENCE["business_relationship"]
    assert rows[1]["basis"] == "business_relationship"
    assert rows[2]["channel"] == "email"


async def test_cr3_export_json_is_one_array_with_evidence_and_wording(admin, news):
    await record_consent(admin, news["id"], "a@example.jp", "published_address")
    await record_consent(admin, news["id"], "b@example.jp")
    response = await admin.get("/consents/export", params={"list_id": news["id"], "format": "json"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    events = response.json()
    assert [e["email"] for e in events] == ["a@example.jp", "b@example.jp"]
    assert events[0]["evidence"]["url"] == FULL_EVIDENCE["published_address"]["url"]
    assert events[0]["evidence"]["no_refusal_notice"] is True
    assert events[0]["consent_text"] is None
    assert events[1]["consent_text"] == CONSENT_WORDING
    assert events[1]["purpose"] == news["purpose"]


async def test_cr3_export_streams_more_than_one_batch(admin, runtime, news, monkeypatch):
    from app.subscriptions import admin_service

    monkeypatch.setattr(admin_service, "EXPORT_BATCH", 2)
    for i in range(5):
        await record_consent(admin, news["id"], f"p{i}@example.jp")
    events = (await admin.get("/consents/export?format=json")).json()
    assert [e["email"] for e in events] == [f"p{i}@example.jp" for i in range(5)]
    empty = await admin.get(
        "/consents/export", params={"email": "nobody@example.jp", "format": "json"}
    )
    assert empty.json() == []


async def test_export_neutralises_spreadsheet_formulas(admin, news):
    await record_consent(admin, news["id"], "a@example.jp", user_agent='=HYPERLINK("x")')
    response = await admin.get("/consents/export")
    [row] = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert row["user_agent"] == '\'=HYPERLINK("x")'


async def test_export_of_an_unknown_list_is_404(admin):
    response = await admin.get("/consents/export?list_id=999")
    assert response.status_code == 404
    assert response.json()["error"] == "NotFound"
