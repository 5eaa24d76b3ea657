"""/senders: the identity printed in every message (MH-1), checked again at send (SG-3)."""

from __future__ import annotations

import pytest

from tests.factories import SENDER, create_sender


async def test_create_get_list_and_patch_a_sender(admin):
    created = await create_sender(
        admin, contact_phone="03-1234-5678", reply_to="Reply@Shodaku.Example"
    )
    assert created["name"] == SENDER["name"]
    assert created["reply_to"] == "reply@shodaku.example"  # normalised
    assert created["created_at"].endswith("Z") or "+00:00" in created["created_at"]

    fetched = (await admin.get(f"/senders/{created['id']}")).json()
    assert fetched == created

    patched = await admin.patch(
        f"/senders/{created['id']}", json={"from_name": "承諾だより", "contact_phone": None}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["from_name"] == "承諾だより"
    assert patched.json()["contact_phone"] is None
    assert patched.json()["contact_email"] == SENDER["contact_email"]

    listed = (await admin.get("/senders")).json()
    assert [s["from_name"] for s in listed["items"]] == ["承諾だより"]
    assert listed["next_cursor"] is None


async def test_senders_page_by_cursor(admin):
    ids = [(await create_sender(admin, name=f"Sender {i}"))["id"] for i in range(5)]
    first = (await admin.get("/senders?limit=2")).json()
    second = (await admin.get(f"/senders?limit=2&cursor={first['next_cursor']}")).json()
    third = (await admin.get(f"/senders?limit=2&cursor={second['next_cursor']}")).json()
    seen = [s["id"] for page in (first, second, third) for s in page["items"]]
    assert seen == ids
    assert third["next_cursor"] is None


async def test_sg3_a_sender_without_any_contact_is_refused(admin):
    body = {k: v for k, v in SENDER.items() if k != "contact_email"}
    response = await admin.post("/senders", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidInput"
    assert "contact_email, contact_phone or contact_url" in response.json()["detail"]
    assert (await admin.get("/senders")).json()["items"] == []


async def test_sg3_a_patch_may_not_remove_the_last_contact(admin, sender):
    response = await admin.patch(f"/senders/{sender['id']}", json={"contact_email": None})
    assert response.status_code == 422
    assert "contact" in response.json()["detail"]
    assert (await admin.get(f"/senders/{sender['id']}")).json()["contact_email"] == (
        SENDER["contact_email"]
    )


@pytest.mark.parametrize("field", ["name", "from_name", "responsible_person", "contact_phone"])
@pytest.mark.parametrize("bad", ["承諾\r\nBcc: victim@example.com", "a\nb", "a\x00b", "a\u2028b"])
async def test_mh4_header_injection_in_a_one_line_field_is_refused(admin, field, bad):
    response = await admin.post("/senders", json={**SENDER, field: bad})
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"
    assert field in response.json()["detail"]


async def test_mh4_a_patch_cannot_inject_a_header_either(admin, sender):
    response = await admin.patch(f"/senders/{sender['id']}", json={"from_name": "x\r\nBcc: y"})
    assert response.status_code == 422
    assert (await admin.get(f"/senders/{sender['id']}")).json()["from_name"] == SENDER["from_name"]


@pytest.mark.parametrize("field", ["from_email", "contact_email", "reply_to"])
async def test_sg4_invalid_addresses_are_refused(admin, field):
    response = await admin.post("/senders", json={**SENDER, field: "not an address"})
    assert response.status_code == 422
    assert field in response.json()["detail"]


async def test_lengths_follow_the_columns(admin):
    response = await admin.post("/senders", json={**SENDER, "name": "x" * 201})
    assert response.status_code == 422
    assert "name" in response.json()["detail"]


async def test_contact_url_must_be_http(admin):
    response = await admin.post("/senders", json={**SENDER, "contact_url": "javascript:alert(1)"})
    assert response.status_code == 422
    assert "contact_url" in response.json()["detail"]


async def test_required_fields_cannot_be_nulled(admin, sender):
    response = await admin.patch(f"/senders/{sender['id']}", json={"name": None})
    assert response.status_code == 422
    assert "name" in response.json()["detail"]


async def test_unknown_sender_is_404(admin):
    for response in (await admin.get("/senders/999"), await admin.patch("/senders/999", json={})):
        assert response.status_code == 404
        assert response.json() == {"error": "NotFound", "detail": "There is no sender 999."}


async def test_unknown_fields_are_refused(admin):
    response = await admin.post("/senders", json={**SENDER, "contact_mail": "x@example.com"})
    assert response.status_code == 422
    assert "contact_mail" in response.json()["detail"]
