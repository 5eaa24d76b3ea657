"""Bad input gets a clear 4xx with the API.md error body, never a 500, and nothing stored."""

from __future__ import annotations

import pytest

from tests.factories import SENDER, consent_body, count_events


@pytest.mark.parametrize(
    "path",
    [
        "/senders/0",
        "/senders/abc",
        "/senders/99999999999999999999",
        "/lists/2147483648",
        "/subscribers/-1",
        "/subscribers?list_id=99999999999",
        "/consents?list_id=abc",
    ],
)
async def test_malformed_ids_are_422(admin, path):
    response = await admin.get(path)
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"


@pytest.mark.parametrize("path", ["/senders", "/lists", "/subscribers", "/consents"])
@pytest.mark.parametrize("cursor", ["garbage", "%00", "a" * 100, "azE6LTE", "azE6OTk5OTk5OTk5OTk5"])
async def test_garbage_cursors_are_422(admin, path, cursor):
    response = await admin.get(f"{path}?cursor={cursor}")
    assert response.status_code == 422
    assert "cursor" in response.json()["detail"]


@pytest.mark.parametrize(
    "since",
    [
        "yesterday",
        "2026-01-01T00:00:00",
        "9999-99-99",
        "2026-01-01T00:00:00 09:00",
        "0001-01-01T00:00:00+09:00",
    ],
)
async def test_bad_since_is_422(admin, since):
    response = await admin.get("/consents", params={"since": since})
    assert response.status_code == 422
    assert "since" in response.json()["detail"]


async def test_unknown_export_format_is_422(admin):
    response = await admin.get("/consents/export?format=xlsx")
    assert response.status_code == 422


@pytest.mark.parametrize(
    "attributes",
    [
        '{"note": "a\\u0000b"}',
        '{"a\\u0000": 1}',
        '{"nested": [{"deep": "\\ud800"}]}',
        '{"n": Infinity}',
        '{"big": "' + "x" * 20_000 + '"}',
        '"not an object"',
    ],
)
async def test_unstorable_json_is_422(admin, attributes):
    response = await admin.post(
        "/subscribers",
        content='{"email": "a@example.jp", "attributes": ' + attributes + "}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "attributes" in response.json()["detail"]
    assert (await admin.get("/subscribers")).json()["items"] == []


async def test_nan_in_evidence_is_422_and_nothing_stored(admin, runtime, news):
    raw = (
        '{"email": "a@example.jp", "basis": "business_relationship", "method": "api",'
        ' "obtained_at": "2026-01-01T00:00:00Z",'
        ' "evidence": {"transaction_ref": "T1", "transaction_date": "2026-01-01", "amount": NaN}}'
    )
    response = await admin.post(
        f"/lists/{news['id']}/consents",
        content=raw,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "evidence" in response.json()["detail"]
    assert await count_events(runtime) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"evidence": []},
        {"consent_text": "\u0000"},
        {"ip": "999.1.1.1"},
        {"source_url": "ftp://example.jp/x"},
        {"user_agent": "x\r\ny"},
        {"consent_text": "x" * 20_001},
        {"obtained_at": "0001-01-01T00:00:00+09:00"},
    ],
)
async def test_bad_consent_fields_are_422(admin, runtime, news, body):
    response = await admin.post(
        f"/lists/{news['id']}/consents", json={**consent_body("a@example.jp"), **body}
    )
    assert response.status_code == 422
    assert next(iter(body)) in response.json()["detail"]
    assert await count_events(runtime) == 0


async def test_not_json_is_422(admin):
    response = await admin.post(
        "/senders", content=b"{name:", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"


async def test_a_nul_in_a_multi_line_field_is_422(admin):
    response = await admin.post("/senders", json={**SENDER, "postal_address": "東京\u0000"})
    assert response.status_code == 422
    assert "postal_address" in response.json()["detail"]
