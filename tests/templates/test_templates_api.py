"""The /templates API: templates compile in the sandbox or are refused with the line and the
reason; previews show exactly what a recipient gets, legal footer included (MH-1, MH-4)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.models import AuditLog, MailingList, Sender, Subscriber, Subscription, Template
from app.runtime import Runtime
from tests.conftest import BASE_URL

REFUSAL_JA = "今後このようなメールの受信を希望されない場合は、以下のURLから配信を停止できます。"
REFUSAL_EN = "You may refuse further emails from us at any time by unsubscribing at this URL:"

TEMPLATE = {
    "name": "月刊ニュース",
    "subject": "{{ name }}様へ {{ list.name }} 5月号",
    "html": "<html><body><h1>{{ name }}様</h1><p>{{ sender.name }}からのお知らせ</p></body></html>",
}


async def make_list(runtime: Runtime, *, language: str = "ja", slug: str = "news") -> int:
    async with runtime.sessionmaker() as session, session.begin():
        sender = Sender(
            name="株式会社承諾 & Co",
            postal_address="〒100-0001 東京都千代田区千代田1-1",
            contact_email="support@shodaku.example",
            from_email="news@shodaku.example",
        )
        session.add(sender)
        await session.flush()
        mailing_list = MailingList(
            sender_id=sender.id,
            name=f"承諾ニュース {slug}",
            slug=slug,
            purpose="お知らせ",
            language=language,
        )
        session.add(mailing_list)
        await session.flush()
        return mailing_list.id


async def make_subscriber(runtime: Runtime, *, list_id: int | None, name: str) -> int:
    hasher = await runtime.hasher()
    async with runtime.sessionmaker() as session, session.begin():
        subscriber = Subscriber(
            email="hanako@example.jp",
            address_hash=hasher("hanako@example.jp"),
            name=name,
            attributes={"plan": "gold"},
        )
        session.add(subscriber)
        await session.flush()
        if list_id is not None:
            session.add(Subscription(subscriber_id=subscriber.id, list_id=list_id))
        return subscriber.id


async def create(admin: httpx.AsyncClient, **changes: Any) -> httpx.Response:
    return await admin.post("/templates", json={**TEMPLATE, **changes})


async def test_a_template_that_compiles_is_saved_and_audited(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await create(admin, text="{{ name }}様\nお知らせです")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "月刊ニュース"
    assert body["text"] == "{{ name }}様\nお知らせです"
    fetched = await admin.get(f"/templates/{body['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == body
    listing = (await admin.get("/templates")).json()
    assert [t["id"] for t in listing["items"]] == [body["id"]]
    async with runtime.sessionmaker() as session:
        actions = (await session.scalars(select(AuditLog.action))).all()
    assert "template.create" in actions


async def test_a_syntax_error_is_refused_with_its_line(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await create(admin, html="<html>\n<body>\n<p>{{ foo</p>\n</body></html>")
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "TemplateInvalid"
    assert body["detail"].startswith("html line 3: ")
    async with runtime.sessionmaker() as session:
        assert (await session.scalars(select(Template))).all() == []


async def test_a_sandbox_escape_is_refused_not_a_500(admin: httpx.AsyncClient) -> None:
    for html in (
        "<p>{{ ''.__class__.__mro__ }}</p>",
        "<p>{{ attributes.update({'x': 1}) }}</p>",
        "<p>\n{{ name.__class__.__init__.__globals__ }}</p>",
    ):
        response = await create(admin, html=html)
        assert response.status_code == 422, html
        assert response.json()["error"] == "TemplateInvalid"
        assert "not allowed" in response.json()["detail"]


async def test_an_unknown_variable_is_refused(admin: httpx.AsyncClient) -> None:
    response = await create(admin, html="<p>{{ name }}</p>\n<p>{{ coupon_code }}</p>")
    assert response.status_code == 422
    assert response.json()["detail"].startswith("html line 2: 'coupon_code' is undefined")
    response = await create(admin, subject="{{ nickname }}さんへ")
    assert response.status_code == 422
    assert response.json()["detail"].startswith("subject line 1:")
    # Attributes differ per subscriber: a bare lookup would fail mid-campaign, a default does not.
    bare = await create(admin, html="<p>{{ attributes.company }}</p>")
    assert bare.status_code == 422
    assert "default" in bare.json()["detail"]
    assert (await create(admin, html="<p>{{ attributes.company | default('') }}</p>")).is_success


@pytest.mark.parametrize(
    "changes",
    [
        {"subject": "Hello\r\nBcc: victim@example.com"},
        {"subject": "Hello\nthere"},
        {"name": "name\rX-Evil: 1"},
        {"html": "<p>NUL\x00</p>"},
    ],
)
async def test_mh4_line_breaks_in_header_fields_are_refused(
    admin: httpx.AsyncClient, changes: dict[str, str]
) -> None:
    response = await create(admin, **changes)
    assert response.status_code == 422


async def test_mh1_a_template_hiding_the_footer_is_refused(admin: httpx.AsyncClient) -> None:
    response = await create(admin, html="<p>本文</p><!-- {{ footer }} -->")
    assert response.status_code == 422
    assert "footer" in response.json()["detail"]


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("<p>本文</p><!--", "inside an HTML comment"),
        ("<p>本文</p><textarea>", "inside <textarea>"),
        ("<p>本文</p><noscript>", "inside <noscript>"),
        ('<p>本文</p><a href="', "inside an HTML tag"),
    ],
)
async def test_mh1_a_template_leaving_markup_open_is_refused_naming_it(
    admin: httpx.AsyncClient, html: str, reason: str
) -> None:
    """MH-1: markup left open at the end of the template would swallow what follows it; the
    save says so. (Messages are safe anyway: the footer is written outside the content.)"""
    response = await create(admin, html=html)
    assert response.status_code == 422
    assert response.json()["error"] == "TemplateInvalid"
    assert reason in response.json()["detail"]
    assert "swallow" in response.json()["detail"]


async def test_patch_is_validated_like_create_and_leaves_nothing_half_written(
    admin: httpx.AsyncClient,
) -> None:
    template = (await create(admin)).json()
    bad = await admin.patch(f"/templates/{template['id']}", json={"html": "{% if %}"})
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("html line 1:")
    crlf = await admin.patch(f"/templates/{template['id']}", json={"subject": "a\r\nb"})
    assert crlf.status_code == 422
    assert (await admin.get(f"/templates/{template['id']}")).json()["html"] == TEMPLATE["html"]
    good = await admin.patch(f"/templates/{template['id']}", json={"subject": "新しい件名"})
    assert good.status_code == 200
    assert good.json()["subject"] == "新しい件名"
    assert good.json()["html"] == TEMPLATE["html"]


async def test_mh1_preview_without_a_subscriber_uses_a_sample_and_includes_the_footer(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    await make_list(runtime)
    template = (await create(admin)).json()
    response = await admin.post(f"/templates/{template['id']}/preview")  # no body at all
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["subject"] == "山田太郎様へ 承諾ニュース news 5月号"
    assert "<h1>山田太郎様</h1>" in preview["html"]
    assert "株式会社承諾 &amp; Co" in preview["html"]
    for part in (preview["html"], preview["text"]):
        assert part.count(REFUSAL_JA) == 1
        assert "〒100-0001 東京都千代田区千代田1-1" in part
        assert "support@shodaku.example" in part
        assert f"{BASE_URL}/unsubscribe/" in part
    assert "株式会社承諾 & Co" in preview["text"]
    assert "山田太郎様" in preview["text"]


async def test_mh1_preview_for_a_subscriber_uses_their_list_language_and_own_link(
    admin: httpx.AsyncClient, runtime: Runtime
) -> None:
    await make_list(runtime, slug="first")
    english = await make_list(runtime, language="en", slug="english")
    subscriber_id = await make_subscriber(runtime, list_id=english, name="Hanako <b>")
    template = (await create(admin)).json()
    response = await admin.post(
        f"/templates/{template['id']}/preview", json={"subscriber_id": subscriber_id}
    )
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["subject"] == "Hanako <b>様へ 承諾ニュース english 5月号"
    assert "<h1>Hanako &lt;b&gt;様</h1>" in preview["html"]
    assert preview["html"].count(REFUSAL_EN) == 1
    assert preview["text"].count(REFUSAL_EN) == 1
    # The link in the preview is the subscriber's own, for the list that was used.
    url = preview["text"].split(REFUSAL_EN, 1)[1].split()[0]
    claim = runtime.signer.read_unsubscribe(url.rsplit("/", 1)[1])
    assert (claim.subscriber_id, claim.list_id) == (subscriber_id, english)

    first = await admin.post(
        f"/templates/{template['id']}/preview",
        json={"subscriber_id": subscriber_id, "list_id": english - 1},
    )
    assert first.json()["html"].count(REFUSAL_JA) == 1


async def test_preview_without_any_list_is_a_conflict(admin: httpx.AsyncClient) -> None:
    template = (await create(admin)).json()
    response = await admin.post(f"/templates/{template['id']}/preview", json={})
    assert response.status_code == 409
    assert "list" in response.json()["detail"]


async def test_preview_of_unknown_things_is_404(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    await make_list(runtime)
    template = (await create(admin)).json()
    assert (await admin.post("/templates/999/preview", json={})).status_code == 404
    unknown_subscriber = await admin.post(
        f"/templates/{template['id']}/preview", json={"subscriber_id": 999}
    )
    assert unknown_subscriber.status_code == 404
    unknown_list = await admin.post(f"/templates/{template['id']}/preview", json={"list_id": 999})
    assert unknown_list.status_code == 404


async def test_keys_are_required_and_read_keys_cannot_write(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, read_key: str
) -> None:
    template = (await create(admin)).json()
    assert (await client.post("/api/v1/templates", json=TEMPLATE)).status_code == 401
    assert (await client.get("/api/v1/templates")).status_code == 401
    reader = {"Authorization": f"Bearer {read_key}"}
    path = f"/api/v1/templates/{template['id']}"
    assert (await client.get(path, headers=reader)).status_code == 200
    assert (await client.get("/api/v1/templates", headers=reader)).status_code == 200
    assert (
        await client.post("/api/v1/templates", json=TEMPLATE, headers=reader)
    ).status_code == 403
    assert (await client.patch(path, json={"name": "x"}, headers=reader)).status_code == 403
    assert (await client.post(f"{path}/preview", json={}, headers=reader)).status_code == 403


@pytest.mark.parametrize("where", ["subject", "html", "text"])
async def test_a_lone_surrogate_is_a_422_not_a_500(admin: httpx.AsyncClient, where: str) -> None:
    """Found in review: a template printing "\\ud800" (not valid Unicode, no mail can carry it)
    answered 500 when saved; it is a 422 naming the part."""
    body = {"name": "s", "subject": "件名", "html": "<p>本文</p>", "text": "本文"}
    body[where] = body[where] + '{{ "\\ud800" }}'
    response = await admin.post("/templates", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(where)
