"""The confirmation mail of a list for Japanese carrier addresses (charset ISO-2022-JP), from a
real signup through the outbox to a real SMTP server (aiosmtpd) (CC-3)."""

from __future__ import annotations

import html
from typing import Any

import httpx

from app.models import Sender
from app.models.enums import SubscriptionStatus
from app.runtime import Runtime
from tests.conftest import BASE_URL
from tests.factories import SENDER_NAME, make_list, register_wording, subscription_of
from tests.public.conftest import (
    confirm_url_in,
    form_signup,
    html_part,
    json_signup,
    text_part,
)
from tests.smtp import SmtpServer


def _charsets(message: Any) -> list[str | None]:
    return [part.get_content_charset() for part in message.iter_parts()]


async def test_cc3_the_confirmation_of_a_carrier_list_arrives_in_iso_2022_jp_and_confirms(
    client: httpx.AsyncClient,
    runtime: Runtime,
    sender_row: Sender,
    smtp_server: SmtpServer,
    outbox: Any,
) -> None:
    """Subject and From in ISO-2022-JP encoded words, both parts ISO-2022-JP: decoded, the mail
    quotes the wording of the form, names the sender, and its link confirms."""
    keitai = await make_list(runtime, sender_row, slug="keitai", charset="iso-2022-jp")
    signup = await form_signup(client, "keitai", "hanako@example.jp", name="山田花子")
    assert signup.status_code == 202
    assert (await outbox()).sent == 1

    [received] = smtp_server.received
    head = received.data.split(b"\r\n\r\n", 1)[0]
    assert b"Subject: =?ISO-2022-JP?B?" in head
    assert b"From: =?ISO-2022-JP?B?" in head
    assert all(byte < 128 for byte in received.data)
    message = received.message
    assert _charsets(message) == ["iso-2022-jp", "iso-2022-jp"]
    assert str(message["Subject"]) == f"【{SENDER_NAME}】メールマガジン登録の確認のお願い"
    assert str(message["From"]) == "承諾商事ニュース <news@shodaku-shoji.example>"
    text = text_part(message).replace("\r\n", "\n")
    assert text.startswith(
        f"{SENDER_NAME}の「承諾ニュース」へのご登録をお申し込みいただきました。\n"
    )
    assert "お申し込みの際に示された、次の同意の内容を確認いただきます。" in text
    assert '<meta charset="ISO-2022-JP">' in html_part(message)
    url = confirm_url_in(received)
    assert url.startswith(f"{BASE_URL}/confirm/")
    assert html.escape(url) in html_part(message)

    confirmed = await client.post(url.removeprefix(BASE_URL))
    assert confirmed.status_code == 200
    subscription = await subscription_of(runtime, "hanako@example.jp", keitai.id)
    assert subscription is not None
    assert subscription.status == SubscriptionStatus.ACTIVE


async def test_a_confirmation_quoting_a_wording_out_of_reach_arrives_whole_in_utf_8(
    client: httpx.AsyncClient,
    runtime: Runtime,
    sender_row: Sender,
    smtp_server: SmtpServer,
    outbox: Any,
) -> None:
    """The wording the person agreed to has ① in it: the mail quotes it exactly (CR-1), so it
    goes in UTF-8 rather than with the character changed or lost."""
    keitai = await make_list(runtime, sender_row, slug="keitai", charset="iso-2022-jp")
    wording = "①新商品のご案内メール（広告を含みます）の受信に同意します（株式会社承諾商事）"
    await register_wording(runtime, keitai, wording)
    signup = await json_signup(client, "keitai", "hanako@example.jp", consent_text=wording)
    assert signup.status_code == 202
    assert (await outbox()).sent == 1
    [received] = smtp_server.received
    assert _charsets(received.message) == ["utf-8", "utf-8"]
    assert wording in text_part(received.message).replace("\r\n", "\n")
    assert '<meta charset="utf-8">' in html_part(received.message)
