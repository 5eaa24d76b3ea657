"""A list for Japanese carrier addresses, end to end: the API sets its charset to ISO-2022-JP,
the sender sends to a real SMTP server (aiosmtpd), and what arrives decodes to exactly the
Japanese the list's readers are meant to read; the preflight names what ISO-2022-JP cannot
carry before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from app.models import Campaign, Subscriber
from app.sending.runner import DeliveryRunner
from tests.conftest import BASE_URL
from tests.factories import consent, make_world
from tests.smtp import Received

HTML = (
    "<html><body><h1>{{ list.name }}</h1><p>{{ name or 'お客様' }}様</p>"
    "<p>いつもご利用ありがとうございます。12月のお知らせです。</p></body></html>"
)
TEXT = "{{ name or 'お客様' }}様\n\nいつもご利用ありがとうございます。12月のお知らせです。"
SENDER = {
    "name": "株式会社承諾",
    "postal_address": "〒100-0001 東京都千代田区千代田1-1",
    "contact_email": "support@shodaku.example",
    "from_email": "news@shodaku.example",
    "from_name": "承諾ニュース",
}
# What a reader of the list reads in the text part, the legal footer (MH-1) included; the
# unsubscribe URL is each recipient's own.
EXPECTED_TEXT = """{name}様

いつもご利用ありがとうございます。12月のお知らせです。

――――――――――――――――――――
このメールは「承諾ニュース」にご登録いただいた方にお送りしています。
送信者: 株式会社承諾
住所: 〒100-0001 東京都千代田区千代田1-1
お問い合わせ・苦情受付（メール）: support@shodaku.example

今後このようなメールの受信を希望されない場合は、以下のURLから配信を停止できます。
{url}
"""


@pytest.fixture
def runner(app: Any) -> DeliveryRunner:
    return DeliveryRunner(app.state.runtime, app.state.transport, worker_id="test-worker")


async def _campaign(admin: Any, world: Any) -> int:
    created = await admin.post(
        "/campaigns",
        json={"name": "12月号", "list_id": world.list_id, "template_id": world.template_id},
    )
    assert created.status_code == 201, created.text
    campaign_id: int = created.json()["id"]
    return campaign_id


async def _named(runtime: Any, list_id: int, email: str, name: str) -> None:
    subscriber_id = await consent(runtime, list_id, email)
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Subscriber).where(Subscriber.id == subscriber_id).values(name=name)
        )


def _charsets(received: Received) -> list[str | None]:
    return [part.get_content_charset() for part in received.message.iter_parts()]


def _text(received: Received) -> str:
    return str(received.message.get_body(("plain",)).get_content()).replace("\r\n", "\n")  # type: ignore[union-attr]


async def _carrier_world(admin: Any, runtime: Any, **overrides: Any) -> Any:
    """A list created as UTF-8 and switched to ISO-2022-JP through the API, as an operator
    would."""
    change = {"charset": "ISO-2022-JP"}
    if "list_name" in overrides:
        change["name"] = overrides.pop("list_name")
    world = await make_world(runtime, **{"html": HTML, "text": TEXT, "sender": SENDER, **overrides})
    patched = await admin.patch(f"/lists/{world.list_id}", json=change)
    assert patched.status_code == 200, patched.text
    assert patched.json()["charset"] == "iso-2022-jp"
    return world


async def test_a_carrier_list_campaign_arrives_in_iso_2022_jp_and_reads_exactly_as_written(
    admin: Any, runtime: Any, runner: DeliveryRunner, smtp_server: Any
) -> None:
    """Both parts arrive as ISO-2022-JP and decode to exactly the intended text, footer and
    unsubscribe URL included (MH-1); the subject and From decode exactly; List-Unsubscribe is
    the one-click URL, as on any list (MH-3). A recipient whose name has 髙, which ISO-2022-JP
    cannot carry, gets the same campaign in UTF-8 with the name intact, never 高 or ?."""
    world = await _carrier_world(admin, runtime)
    await _named(runtime, world.list_id, "hanako@example.jp", "山田花子")
    await _named(runtime, world.list_id, "takahashi@example.jp", "髙橋一郎")
    campaign_id = await _campaign(admin, world)
    sent = await admin.post(f"/campaigns/{campaign_id}/send")
    assert sent.status_code == 202, sent.text
    report = await runner.drain(campaign_id)
    assert report.sent == 2

    [hanako] = smtp_server.messages_to("hanako@example.jp")
    assert _charsets(hanako) == ["iso-2022-jp", "iso-2022-jp"]
    assert b"=?ISO-2022-JP?B?" in hanako.data.split(b"\r\n\r\n", 1)[0]
    assert all(byte < 128 for byte in hanako.data)
    message = hanako.message
    assert str(message["Subject"]) == "【お知らせ】承諾ニュース 12月号"
    assert str(message["From"]) == "承諾ニュース <news@shodaku.example>"
    assert str(message["To"]) == "山田花子 <hanako@example.jp>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = message["List-Unsubscribe"].strip("<>")
    assert url.startswith(f"{BASE_URL}/unsubscribe/")
    assert _text(hanako) == EXPECTED_TEXT.format(name="山田花子", url=url)
    html = str(message.get_body(("html",)).get_content())  # type: ignore[union-attr]
    assert '<meta charset="ISO-2022-JP">' in html
    for line in ("山田花子様", "いつもご利用ありがとうございます。", "株式会社承諾", url):
        assert line in html

    [takahashi] = smtp_server.messages_to("takahashi@example.jp")
    assert _charsets(takahashi) == ["utf-8", "utf-8"]
    other_url = takahashi.message["List-Unsubscribe"].strip("<>")
    assert _text(takahashi) == EXPECTED_TEXT.format(name="髙橋一郎", url=other_url)
    assert str(takahashi.message["To"]) == "髙橋一郎 <takahashi@example.jp>"

    # The deliveries record nothing of the fallback with an address; both are simply sent.
    rows = (await admin.get(f"/campaigns/{campaign_id}/deliveries")).json()["items"]
    assert {r["status"] for r in rows} == {"sent"}


@pytest.mark.parametrize(
    ("overrides", "where", "characters"),
    [
        ({"subject": "①【お知らせ】{{ list.name }} 12月号"}, "subject", "①"),
        (
            {"html": HTML.replace("12月のお知らせ", "髙島屋と﨑陽軒のお知らせ")},
            "template",
            "髙, 﨑",
        ),
        ({"text": TEXT + "\n㈱承諾"}, "template", "㈱"),
        ({"sender": {**SENDER, "name": "株式会社髙承諾"}}, "sender identity", "髙"),
        ({"sender": {**SENDER, "postal_address": "東京都千代田区①-1"}}, "sender identity", "①"),
        # The list's name is in the List-Id and the footer (the template here does not show it).
        (
            {
                "list_name": "髙島ニュース",
                "subject": "【お知らせ】12月号",
                "html": HTML.replace("{{ list.name }}", "12月号"),
            },
            "list name",
            "髙",
        ),
    ],
    ids=["subject", "html", "text", "sender-name", "postal-address", "list-name"],
)
async def test_preflight_names_what_iso_2022_jp_cannot_carry_and_where(
    admin: Any,
    runtime: Any,
    smtp_server: Any,
    overrides: dict[str, Any],
    where: str,
    characters: str,
) -> None:
    """The list promised its readers ISO-2022-JP: a character it cannot carry in the subject,
    the template or the sender's identity (the From name and the legal footer) is a 409 that
    names the characters and where they are, and the campaign stays a draft."""
    world = await _carrier_world(admin, runtime, **overrides)
    await _named(runtime, world.list_id, "hanako@example.jp", "山田花子")
    campaign_id = await _campaign(admin, world)
    response = await admin.post(f"/campaigns/{campaign_id}/send")
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["error"] == "PreflightFailed"
    [reason] = body["reasons"]
    assert reason == (
        f"{where}: ISO-2022-JP, the list's charset, cannot carry {characters}; "
        "replace them, or set the list's charset to utf-8"
    )
    assert body["unencodable"] == {where: characters.split(", ")}
    assert reason in body["detail"]
    async with runtime.sessionmaker() as session:
        status = await session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
    assert status == "draft"
    assert smtp_server.count() == 0

    # The same campaign on the list switched back to UTF-8 goes.
    await admin.patch(f"/lists/{world.list_id}", json={"charset": "utf-8"})
    assert (await admin.post(f"/campaigns/{campaign_id}/send")).status_code == 202


async def test_preflight_lets_through_what_iso_2022_jp_mends(
    admin: Any, runtime: Any, runner: DeliveryRunner, smtp_server: Any
) -> None:
    """～ (typed by Windows for 〜) and half-width kana have a JIS twin: not a refusal; the
    message arrives in ISO-2022-JP with the twin."""
    world = await _carrier_world(
        admin, runtime, subject="ｾｰﾙ 10日～20日", html=HTML.replace("12月", "ｾｰﾙ～")
    )
    await _named(runtime, world.list_id, "hanako@example.jp", "山田花子")
    campaign_id = await _campaign(admin, world)
    assert (await admin.post(f"/campaigns/{campaign_id}/send")).status_code == 202
    await runner.drain(campaign_id)
    [received] = smtp_server.received
    assert _charsets(received) == ["iso-2022-jp", "iso-2022-jp"]
    assert str(received.message["Subject"]) == "セール 10日〜20日"


async def test_a_utf_8_list_sends_those_characters_without_a_word(
    admin: Any, runtime: Any, runner: DeliveryRunner, smtp_server: Any
) -> None:
    world = await make_world(runtime, subject="①髙橋様へ", html=HTML, text=TEXT, sender=SENDER)
    await _named(runtime, world.list_id, "hanako@example.jp", "山田花子")
    campaign_id = await _campaign(admin, world)
    assert (await admin.post(f"/campaigns/{campaign_id}/send")).status_code == 202
    await runner.drain(campaign_id)
    [received] = smtp_server.received
    assert _charsets(received) == ["utf-8", "utf-8"]
    assert str(received.message["Subject"]) == "①髙橋様へ"
