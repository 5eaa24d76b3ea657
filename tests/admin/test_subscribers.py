"""/subscribers: people with no consent of their own (CC-1), corrected, not re-addressed (DS-2)."""

from __future__ import annotations

from app.subscriptions.repository import GateVerdict
from tests.factories import create_list, gate, record_consent, signup


async def test_cc1_a_created_subscriber_has_no_consent_and_is_not_mailable(admin, runtime, news):
    response = await admin.post(
        "/subscribers",
        json={"email": "Taro@Example.JP", "name": "山田太郎", "attributes": {"company": "ACME"}},
    )
    assert response.status_code == 201, response.text
    person = response.json()
    assert person["email"] == "taro@example.jp"
    assert person["subscriptions"] == []
    assert await gate(runtime, person["id"], news["id"]) is GateVerdict.NO_CONSENT
    assert (await admin.get(f"/subscribers/{person['id']}")).json() == person


async def test_sg4_full_width_address_is_normalised_and_nonsense_refused(admin):
    created = await admin.post("/subscribers", json={"email": "ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ"})
    assert created.json()["email"] == "taro@example.jp"
    refused = await admin.post("/subscribers", json={"email": "taro@"})
    assert refused.status_code == 422
    assert refused.json()["error"] == "ValidationError"
    assert "email" in refused.json()["detail"]


async def test_a_known_address_is_409(admin):
    await admin.post("/subscribers", json={"email": "taro@example.jp"})
    again = await admin.post("/subscribers", json={"email": "TARO@example.jp"})
    assert again.status_code == 409
    assert again.json()["error"] == "Conflict"


async def test_subscriber_shows_its_subscriptions_with_status_basis_and_gate(admin, runtime, news):
    recorded = await record_consent(admin, news["id"], "hanako@example.jp", "written_notice")
    subscriber_id = recorded["subscription"]["subscriber_id"]
    body = (await admin.get(f"/subscribers/{subscriber_id}")).json()
    [subscription] = body["subscriptions"]
    assert subscription["list_id"] == news["id"]
    assert subscription["status"] == "active"
    assert subscription["basis"] == "written_notice"
    assert subscription["gate"] == "mailable"
    assert subscription["grant_event_id"] == recorded["event"]["id"]
    assert "confirmed_at" in subscription


async def test_subscribers_page_by_cursor_and_filter(admin, runtime, sender, news):
    other = await create_list(admin, sender["id"], slug="other")
    emails = [f"p{i}@example.com" for i in range(7)]
    for email in emails[:5]:
        await record_consent(admin, news["id"], email)
    await signup(runtime, other["id"], emails[5])
    await admin.post("/subscribers", json={"email": emails[6]})

    seen, cursor, pages = [], None, 0
    while True:
        url = "/subscribers?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await admin.get(url)).json()
        seen += [s["email"] for s in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == emails
    assert pages == 3

    on_news = (await admin.get(f"/subscribers?list_id={news['id']}")).json()["items"]
    assert [s["email"] for s in on_news] == emails[:5]
    pending = (await admin.get("/subscribers?status=pending")).json()["items"]
    assert [s["email"] for s in pending] == [emails[5]]
    active_other = await admin.get(f"/subscribers?list_id={other['id']}&status=active")
    assert active_other.json()["items"] == []
    by_email = (await admin.get("/subscribers", params={"email": "P3@Example.com"})).json()
    assert [s["email"] for s in by_email["items"]] == ["p3@example.com"]


async def test_ds2_patch_corrects_name_and_attributes(admin):
    person = (
        await admin.post("/subscribers", json={"email": "a@example.jp", "name": "山田"})
    ).json()
    response = await admin.patch(
        f"/subscribers/{person['id']}", json={"name": "山田 太郎", "attributes": {"dept": "営業"}}
    )
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["attributes"]) == (
        "山田 太郎",
        {"dept": "営業"},
    )
    assert response.json()["email"] == "a@example.jp"


async def test_ds2_an_address_change_is_refused_and_needs_a_fresh_opt_in(admin, runtime, news):
    recorded = await record_consent(admin, news["id"], "old@example.jp")
    subscriber_id = recorded["subscription"]["subscriber_id"]
    response = await admin.patch(
        f"/subscribers/{subscriber_id}", json={"email": "new@example.jp", "name": "x"}
    )
    assert response.status_code == 422
    assert "email" in response.json()["detail"]
    assert "opt-in" in response.json()["detail"]
    after = (await admin.get(f"/subscribers/{subscriber_id}")).json()
    assert (after["email"], after["name"]) == ("old@example.jp", None)
    assert (await admin.get("/subscribers", params={"email": "new@example.jp"})).json()[
        "items"
    ] == []


async def test_ds5_no_attribute_for_special_care_required_data(admin):
    response = await admin.post(
        "/subscribers", json={"email": "a@example.jp", "attributes": {"Medical History": "..."}}
    )
    assert response.status_code == 422
    assert "DS-5" in response.json()["detail"]
    response = await admin.post(
        "/subscribers", json={"email": "a@example.jp", "attributes": {"病歴": "..."}}
    )
    assert response.status_code == 422


async def test_unknown_subscriber_and_unknown_list_filter_are_404(admin):
    assert (await admin.get("/subscribers/999")).status_code == 404
    assert (await admin.patch("/subscribers/999", json={"name": "x"})).status_code == 404
    response = await admin.get("/subscribers?list_id=999")
    assert response.status_code == 404
    assert response.json() == {"error": "NotFound", "detail": "There is no list 999."}
