"""The person's language through the admin API: recorded with a consent, shown with each
subscription and in the disclosure export (DS-1)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import consent_body


async def _subscription(admin: httpx.AsyncClient, email: str) -> dict[str, Any]:
    [person] = (await admin.get("/subscribers", params={"email": email})).json()["items"]
    [subscription] = person["subscriptions"]
    return dict(subscription)


async def test_a_recorded_consent_takes_the_persons_language_and_a_new_one_updates_it(
    admin: httpx.AsyncClient, news: dict[str, Any]
) -> None:
    url = f"/lists/{news['id']}/consents"
    first = await admin.post(url, json=consent_body("kate@example.com", language="en"))
    assert first.status_code == 201, first.text
    assert first.json()["subscription"]["language"] == "en"
    assert (await _subscription(admin, "kate@example.com"))["language"] == "en"

    # Recorded again without a language: the one known stays.
    again = await admin.post(url, json=consent_body("kate@example.com"))
    assert again.status_code == 201
    assert again.json()["subscription"]["language"] == "en"
    # With one: it changes.
    changed = await admin.post(url, json=consent_body("kate@example.com", language="ja"))
    assert changed.json()["subscription"]["language"] == "ja"

    # Never said: null, the list's language applies.
    plain = await admin.post(url, json=consent_body("taro@example.jp"))
    assert plain.json()["subscription"]["language"] is None


async def test_a_language_shodaku_does_not_speak_is_422_and_nothing_is_recorded(
    admin: httpx.AsyncClient, news: dict[str, Any]
) -> None:
    for language in ("fr", "EN", "", 1, "english"):
        response = await admin.post(
            f"/lists/{news['id']}/consents",
            json=consent_body("kate@example.com", language=language),
        )
        assert response.status_code == 422, language
        assert response.json()["error"] == "ValidationError"
        assert "language" in response.json()["detail"]
    assert (await admin.get("/subscribers", params={"email": "kate@example.com"})).json()[
        "items"
    ] == []


async def test_ds1_the_export_says_which_language_the_person_reads(
    admin: httpx.AsyncClient, news: dict[str, Any]
) -> None:
    recorded = await admin.post(
        f"/lists/{news['id']}/consents", json=consent_body("kate@example.com", language="en")
    )
    subscriber_id = recorded.json()["subscription"]["subscriber_id"]
    export = (await admin.get(f"/subscribers/{subscriber_id}/export")).json()
    [subscription] = export["subscriptions"]
    assert subscription["language"] == "en"
    assert subscription["list_language"] == news["language"] == "ja"
