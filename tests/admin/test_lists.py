"""/lists: one sender each (CC-1), a purpose (CC-5), double opt-in by default (CC-3), counts."""

from __future__ import annotations

import pytest

from tests.factories import create_list, create_sender, record_consent, signup


async def test_cc3_cc5_create_a_list_double_opt_in_by_default_with_its_purpose(admin, sender):
    created = await create_list(admin, sender["id"], slug="seminar-2026")
    assert created["double_opt_in"] is True
    assert created["language"] == "ja"
    assert created["purpose"] == "新製品とセミナーのご案内をお送りするため"
    assert created["subscriber_counts"] == {"pending": 0, "active": 0, "unsubscribed": 0}
    assert (await admin.get(f"/lists/{created['id']}")).json() == created


async def test_cc5_purpose_is_required(admin, sender):
    response = await admin.post(
        "/lists", json={"name": "No purpose", "slug": "np", "sender_id": sender["id"]}
    )
    assert response.status_code == 422
    assert "purpose" in response.json()["detail"]


async def test_counts_by_status(admin, runtime, sender, news):
    await record_consent(admin, news["id"], "active1@example.com")
    await record_consent(admin, news["id"], "active2@example.com", "business_relationship")
    await record_consent(admin, news["id"], "leaving@example.com")
    await admin.post(
        "/optouts", json={"email": "leaving@example.com", "list_id": news["id"], "channel": "phone"}
    )
    # A signup through a form on this double opt-in list stays pending (CC-3).
    await signup(runtime, news["id"], "pending@example.com")
    counts = (await admin.get(f"/lists/{news['id']}")).json()["subscriber_counts"]
    assert counts == {"pending": 1, "active": 2, "unsubscribed": 1}
    listed = (await admin.get("/lists")).json()["items"]
    assert listed[0]["subscriber_counts"] == counts


async def test_duplicate_slug_is_409_with_the_error_body(admin, sender, news):
    response = await admin.post(
        "/lists",
        json={"name": "Again", "slug": news["slug"], "sender_id": sender["id"], "purpose": "p"},
    )
    assert response.status_code == 409
    assert response.json()["error"] == "Conflict"
    assert news["slug"] in response.json()["detail"]
    assert len((await admin.get("/lists")).json()["items"]) == 1


async def test_patch_to_a_taken_slug_is_409(admin, sender, news):
    other = await create_list(admin, sender["id"], slug="other")
    response = await admin.patch(f"/lists/{other['id']}", json={"slug": news["slug"]})
    assert response.status_code == 409
    assert (await admin.get(f"/lists/{other['id']}")).json()["slug"] == "other"


@pytest.mark.parametrize(
    "slug", ["News", "news letter", "news_letter", "-news", "ニュース", "", "a" * 101]
)
async def test_slug_is_lowercase_letters_digits_and_hyphens(admin, sender, slug):
    response = await admin.post(
        "/lists", json={"name": "n", "slug": slug, "sender_id": sender["id"], "purpose": "p"}
    )
    assert response.status_code == 422
    assert "slug" in response.json()["detail"]


async def test_unknown_sender_is_422_naming_sender_id(admin):
    response = await admin.post(
        "/lists", json={"name": "n", "slug": "n", "sender_id": 999, "purpose": "p"}
    )
    assert response.status_code == 422
    assert response.json() == {
        "error": "InvalidInput",
        "detail": "sender_id: there is no sender 999.",
    }


async def test_language_is_ja_or_en(admin, sender):
    response = await admin.post(
        "/lists",
        json={
            "name": "n",
            "slug": "n",
            "sender_id": sender["id"],
            "purpose": "p",
            "language": "fr",
        },
    )
    assert response.status_code == 422
    assert "language" in response.json()["detail"]
    created = await create_list(
        admin, sender["id"], slug="en-news", language="en", double_opt_in=False
    )
    assert (created["language"], created["double_opt_in"]) == ("en", False)


async def test_patch_a_list(admin, news):
    response = await admin.patch(
        f"/lists/{news['id']}", json={"name": "New name", "double_opt_in": False, "language": "en"}
    )
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["double_opt_in"]) == ("New name", False)
    assert response.json()["subscriber_counts"] == {"pending": 0, "active": 0, "unsubscribed": 0}


async def test_cc1_a_list_cannot_move_to_another_sender(admin, sender, news):
    other = await create_sender(admin, name="Other KK")
    response = await admin.patch(f"/lists/{news['id']}", json={"sender_id": other["id"]})
    assert response.status_code == 422
    assert "CC-1" in response.json()["detail"]
    assert (await admin.get(f"/lists/{news['id']}")).json()["sender_id"] == sender["id"]
    # Repeating the same sender is harmless.
    same = await admin.patch(f"/lists/{news['id']}", json={"sender_id": sender["id"]})
    assert same.status_code == 200


async def test_lists_filter_by_sender(admin, sender, news):
    other = await create_sender(admin, name="Other KK")
    theirs = await create_list(admin, other["id"], slug="theirs")
    listed = (await admin.get(f"/lists?sender_id={other['id']}")).json()["items"]
    assert [item["id"] for item in listed] == [theirs["id"]]


async def test_unknown_list_is_404(admin):
    for response in (await admin.get("/lists/999"), await admin.patch("/lists/999", json={})):
        assert response.status_code == 404
        assert response.json() == {"error": "NotFound", "detail": "There is no list 999."}


async def test_a_list_writes_utf_8_unless_iso_2022_jp_is_chosen(admin, sender, news):
    """The charset of a list's mails: UTF-8 by default; ISO-2022-JP on request, for readers
    on Japanese carrier addresses, in either spelling; changed back by PATCH."""
    assert news["charset"] == "utf-8"
    carrier = await create_list(admin, sender["id"], slug="keitai", charset="ISO-2022-JP")
    assert carrier["charset"] == "iso-2022-jp"
    assert (await admin.get(f"/lists/{carrier['id']}")).json()["charset"] == "iso-2022-jp"

    patched = await admin.patch(f"/lists/{news['id']}", json={"charset": "iso-2022-jp"})
    assert patched.status_code == 200
    assert patched.json()["charset"] == "iso-2022-jp"
    back = await admin.patch(f"/lists/{news['id']}", json={"charset": "utf-8"})
    assert back.json()["charset"] == "utf-8"
    listed = {item["slug"]: item["charset"] for item in (await admin.get("/lists")).json()["items"]}
    assert listed == {"news": "utf-8", "keitai": "iso-2022-jp"}


@pytest.mark.parametrize("charset", ["shift_jis", "utf8", "", None, 8, ["utf-8"]])
async def test_a_charset_other_than_the_two_is_422_and_changes_nothing(
    admin, sender, news, charset
):
    created = await admin.post(
        "/lists",
        json={
            "name": "n",
            "slug": "other",
            "sender_id": sender["id"],
            "purpose": "p",
            "charset": charset,
        },
    )
    assert created.status_code == 422, created.text
    assert created.json()["error"] == "ValidationError"
    assert "charset" in created.json()["detail"]
    patched = await admin.patch(f"/lists/{news['id']}", json={"charset": charset})
    assert patched.status_code == 422
    assert "charset" in patched.json()["detail"]
    assert len((await admin.get("/lists")).json()["items"]) == 1
    assert (await admin.get(f"/lists/{news['id']}")).json()["charset"] == "utf-8"
