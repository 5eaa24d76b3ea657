"""Double opt-in end to end: the confirmation mail, the confirm page, bad links (CC-3, CR-1)."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import time_machine

from app.models import ConsentEvent, MailingList
from app.models.enums import ConsentEventKind, SubscriptionStatus
from app.runtime import Runtime
from app.subscriptions.repository import check_gate
from app.tokens import TokenSigner
from tests.conftest import BASE_URL
from tests.public.conftest import (
    confirm_url_in,
    form_signup,
    html_part,
    json_signup,
    text_part,
)
from tests.public.factories import PURPOSE, SENDER_NAME, count, events_of, subscription_of
from tests.public.html import read_page
from tests.smtp import SmtpServer

URL = re.compile(r"https?://[^\s\"<>]+")


async def _pending(client: httpx.AsyncClient, runtime: Runtime, email: str, list_id: int) -> str:
    """Sign up through the API door and return the confirm token for that request."""
    assert (await json_signup(client, "news", email)).status_code == 202
    subscription = await subscription_of(runtime, email, list_id)
    assert subscription is not None
    assert subscription.grant_event_id is not None
    return runtime.signer.confirm_token(subscription.grant_event_id)


def _assert_plain_400_page(response: httpx.Response) -> None:
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in response.headers


async def test_cc3_confirmation_mail_then_get_changes_nothing_then_post_activates(
    client: httpx.AsyncClient,
    runtime: Runtime,
    news: MailingList,
    smtp_server: SmtpServer,
    outbox: Any,
) -> None:
    signup = await form_signup(client, "news", "hanako@example.jp", name="山田花子")
    assert signup.status_code == 202
    run = await outbox()
    assert run.sent == 1

    # CC-3: one mail, to the address that asked and to nobody else.
    [received] = smtp_server.received
    assert received.rcpt_tos == ["hanako@example.jp"]
    message = received.message
    assert message["To"] == "hanako@example.jp"
    assert message["Cc"] is None
    assert message["Bcc"] is None
    # No advertising: no unsubscribe machinery of a marketing mail, no purpose or offer text,
    # and no link but the confirm link.
    assert message["List-Unsubscribe"] is None
    url = confirm_url_in(received)
    assert url.startswith(f"{BASE_URL}/confirm/")
    assert set(URL.findall(text_part(message))) == {url}
    assert {u.rstrip("'") for u in URL.findall(html_part(message))} == {url}
    assert PURPOSE not in text_part(message)
    assert "セール" not in text_part(message)
    assert "セール" not in html_part(message)
    assert SENDER_NAME in text_part(message)
    # The token does not carry the address, not even inside its encoded payload.
    token = url.rsplit("/", 1)[1]
    payload = token.split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert b"hanako" not in decoded
    assert "hanako" not in token

    subscription = await subscription_of(runtime, "hanako@example.jp", news.id)
    assert subscription is not None
    path = url.removeprefix(BASE_URL)

    # A GET (a link scanner, or the person opening the link) only shows the button.
    page = await client.get(path)
    assert page.status_code == 200
    shown = read_page(page.text)
    assert shown.html_lang == "ja"
    [form] = shown.forms()
    assert form.attrs["method"] == "post"
    assert form.attrs["action"] == path
    assert "登録を確認する" in shown.text
    assert SENDER_NAME in shown.text
    assert "承諾ニュース" in shown.text
    for _ in range(3):
        assert (await client.get(path)).status_code == 200
    still = await subscription_of(runtime, "hanako@example.jp", news.id)
    assert still is not None
    assert still.status == SubscriptionStatus.PENDING
    assert [e.kind for e in await events_of(runtime, "hanako@example.jp")] == ["grant"]

    # The POST confirms, and records who confirmed from where (CR-1).
    done = await client.post(path, headers={"user-agent": "Mail Reader/1.0"})
    assert done.status_code == 200
    assert "ご登録が完了しました" in done.text
    active = await subscription_of(runtime, "hanako@example.jp", news.id)
    assert active is not None
    assert active.status == SubscriptionStatus.ACTIVE
    assert active.confirmed_at is not None
    async with runtime.sessionmaker() as session:
        gate = await check_gate(session, active.subscriber_id, news.id)
    assert gate.mailable
    grant, confirm = await events_of(runtime, "hanako@example.jp")
    assert confirm.kind == ConsentEventKind.CONFIRM
    assert confirm.ip == "203.0.113.7"
    assert confirm.user_agent == "Mail Reader/1.0"
    assert confirm.confirmed_at is not None
    assert confirm.evidence == {"grant_event_id": grant.id}
    assert gate.consent_event_id == confirm.id

    # Pressing the button again is harmless.
    again = await client.post(path)
    assert again.status_code == 200
    assert "すでに確認済み" in again.text
    assert len(await events_of(runtime, "hanako@example.jp")) == 2


async def test_cc3_confirm_page_speaks_the_lists_language(
    client: httpx.AsyncClient, runtime: Runtime, sender: Any
) -> None:
    from tests.public.factories import make_list

    english = await make_list(runtime, sender, slug="en-news", name="Deals", language="en")
    assert (await json_signup(client, "en-news", "mary@example.com")).status_code == 202
    subscription = await subscription_of(runtime, "mary@example.com", english.id)
    assert subscription is not None
    assert subscription.grant_event_id is not None
    path = f"/confirm/{runtime.signer.confirm_token(subscription.grant_event_id)}"
    page = await client.get(path)
    assert read_page(page.text).html_lang == "en"
    assert "Confirm subscription" in page.text
    done = await client.post(path)
    assert "You are subscribed" in done.text


async def test_cc3_expired_confirm_link_is_a_400_page_and_confirms_nothing(
    client: httpx.AsyncClient, runtime: Runtime, news: MailingList
) -> None:
    assert (await json_signup(client, "news", "hanako@example.jp")).status_code == 202
    subscription = await subscription_of(runtime, "hanako@example.jp", news.id)
    assert subscription is not None
    assert subscription.grant_event_id is not None
    # A link mailed eight days ago: the default lifetime is seven days.
    with time_machine.travel(datetime.now(UTC) - timedelta(days=8)):
        token = runtime.signer.confirm_token(subscription.grant_event_id)
    for response in (await client.get(f"/confirm/{token}"), await client.post(f"/confirm/{token}")):
        _assert_plain_400_page(response)
        assert "有効期限が切れています" in response.text
        assert "expired" in response.text
    still = await subscription_of(runtime, "hanako@example.jp", news.id)
    assert still is not None
    assert still.status == SubscriptionStatus.PENDING
    assert await count(runtime, ConsentEvent) == 1


async def test_cc3_tampered_or_foreign_confirm_links_are_400_pages(
    client: httpx.AsyncClient, runtime: Runtime, news: MailingList
) -> None:
    token = await _pending(client, runtime, "hanako@example.jp", news.id)
    flipped = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    stranger = TokenSigner(["someone-elses-key-0123456789"], confirm_max_age=3600)
    unsubscribe_kind = runtime.signer.unsubscribe_token(1, news.id, "0" * 64)
    for bad in (
        flipped,
        "not-a-token",
        stranger.confirm_token(1),  # signed with a key we do not hold
        unsubscribe_kind,  # a token of another purpose
        runtime.signer.confirm_token(999_999),  # well signed, no such request
    ):
        for response in (await client.get(f"/confirm/{bad}"), await client.post(f"/confirm/{bad}")):
            _assert_plain_400_page(response)
            assert "このリンクは無効か" in response.text
    still = await subscription_of(runtime, "hanako@example.jp", news.id)
    assert still is not None
    assert still.status == SubscriptionStatus.PENDING
    assert await count(runtime, ConsentEvent) == 1


async def test_cc3_a_superseded_confirm_link_is_a_400_page(
    client: httpx.AsyncClient, runtime: Runtime, news: MailingList
) -> None:
    first = await _pending(client, runtime, "hanako@example.jp", news.id)
    second = await _pending(client, runtime, "hanako@example.jp", news.id)
    _assert_plain_400_page(await client.post(f"/confirm/{first}"))
    assert (await client.post(f"/confirm/{second}")).status_code == 200
    # Once confirmed, the older link just says so again rather than failing.
    assert (await client.post(f"/confirm/{first}")).status_code == 200
