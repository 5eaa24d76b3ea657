"""Double opt-in end to end: the confirmation mail, the confirm page, bad links (CC-3, CR-1)."""

from __future__ import annotations

import base64
import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import time_machine
from sqlalchemy import select

from app.models import ConsentEvent, ConsentText, MailingList
from app.models.enums import ConsentEventKind, SubscriptionStatus
from app.runtime import Runtime
from app.subscriptions.repository import check_gate
from app.tokens import TokenSigner
from tests.conftest import BASE_URL
from tests.factories import PURPOSE, SENDER_NAME, count, subscriber_by_email, subscription_of
from tests.public.conftest import (
    confirm_url_in,
    form_signup,
    html_part,
    json_signup,
    text_part,
)
from tests.public.html import read_page
from tests.queries import events_of
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
    news_row: MailingList,
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
    # CR-1: the mail quotes the wording recorded with the request, which states the purpose
    # of use (CC-5); outside that quotation the mail says nothing of the list's offers.
    async with runtime.sessionmaker() as session:
        [grant] = (await session.scalars(select(ConsentEvent))).all()
        wording = await session.scalar(
            select(ConsentText.text).where(ConsentText.hash == grant.consent_text_hash)
        )
    assert wording is not None
    assert PURPOSE in wording
    text = text_part(message).replace("\r\n", "\n")
    assert wording in text
    assert PURPOSE not in text.replace(wording, "")
    assert "セール" not in text.replace(wording, "")
    html_text = html_part(message).replace("\r\n", "\n")
    assert html.escape(wording, quote=False) in html_text
    assert "セール" not in html_text.replace(html.escape(wording, quote=False), "")
    assert SENDER_NAME in text_part(message)
    # The token does not carry the address, not even inside its encoded payload.
    token = url.rsplit("/", 1)[1]
    payload = token.split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert b"hanako" not in decoded
    assert "hanako" not in token

    subscription = await subscription_of(runtime, "hanako@example.jp", news_row.id)
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
    still = await subscription_of(runtime, "hanako@example.jp", news_row.id)
    assert still is not None
    assert still.status == SubscriptionStatus.PENDING
    assert [e.kind for e in await events_of(runtime, "hanako@example.jp")] == ["grant"]

    # The POST confirms, and records who confirmed from where (CR-1).
    done = await client.post(path, headers={"user-agent": "Mail Reader/1.0"})
    assert done.status_code == 200
    assert "ご登録が完了しました" in done.text
    active = await subscription_of(runtime, "hanako@example.jp", news_row.id)
    assert active is not None
    assert active.status == SubscriptionStatus.ACTIVE
    assert active.confirmed_at is not None
    async with runtime.sessionmaker() as session:
        gate = await check_gate(session, active.subscriber_id, news_row.id)
    assert gate.mailable
    grant, confirm = await events_of(runtime, "hanako@example.jp")
    assert confirm.kind == ConsentEventKind.CONFIRM
    assert confirm.ip == "203.0.113.7"
    assert confirm.user_agent == "Mail Reader/1.0"
    assert confirm.confirmed_at is not None
    # The confirm event references the request and the wording it showed: the hosted form's
    # own, quoted in the mail and shown on the page (CR-1).
    assert confirm.evidence == {
        "grant_event_id": grant.id,
        "wording_shown_at_confirmation": True,
        "wording_quoted_in_mail": True,
    }
    assert confirm.consent_text_hash == grant.consent_text_hash
    assert gate.consent_event_id == confirm.id

    # Pressing the button again is harmless, and opening the link again shows no button.
    again = await client.post(path)
    assert again.status_code == 200
    assert "すでに確認済み" in again.text
    reopened = await client.get(path)
    assert reopened.status_code == 200
    assert "すでに確認済み" in reopened.text
    assert read_page(reopened.text).forms() == []
    assert len(await events_of(runtime, "hanako@example.jp")) == 2


async def test_cc3_confirm_page_speaks_the_lists_language(
    client: httpx.AsyncClient, runtime: Runtime, sender_row: Any
) -> None:
    from tests.factories import make_list

    english = await make_list(runtime, sender_row, slug="en-news", name="Deals", language="en")
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
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    assert (await json_signup(client, "news", "hanako@example.jp")).status_code == 202
    subscription = await subscription_of(runtime, "hanako@example.jp", news_row.id)
    assert subscription is not None
    assert subscription.grant_event_id is not None
    # A link mailed eight days ago: the default lifetime is seven days.
    with time_machine.travel(datetime.now(UTC) - timedelta(days=8)):
        token = runtime.signer.confirm_token(subscription.grant_event_id)
    for response in (await client.get(f"/confirm/{token}"), await client.post(f"/confirm/{token}")):
        _assert_plain_400_page(response)
        # The link is ours, only old: the page, in the list's language, says what to do next
        # (sign up again at the list's form) and whom to ask.
        page = read_page(response.text)
        assert "有効期限が切れています" in page.text
        assert f"{BASE_URL}/subscribe/{news_row.slug}" in page.text
        assert SENDER_NAME in page.text
        assert "support@shodaku-shoji.example" in page.text
        assert page.forms() == []
    still = await subscription_of(runtime, "hanako@example.jp", news_row.id)
    assert still is not None
    assert still.status == SubscriptionStatus.PENDING
    assert await count(runtime, ConsentEvent) == 1


async def test_cc3_tampered_or_foreign_confirm_links_are_400_pages(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    token = await _pending(client, runtime, "hanako@example.jp", news_row.id)
    flipped = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    stranger = TokenSigner(["someone-elses-key-0123456789"], confirm_max_age=3600)
    unsubscribe_kind = runtime.signer.unsubscribe_token(1, news_row.id, "0" * 64)
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
    still = await subscription_of(runtime, "hanako@example.jp", news_row.id)
    assert still is not None
    assert still.status == SubscriptionStatus.PENDING
    assert await count(runtime, ConsentEvent) == 1


async def test_cc3_cr1_either_link_of_a_double_signup_confirms_the_wording_it_showed(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    runtime: Runtime,
    news_row: MailingList,
    smtp_server: SmtpServer,
    outbox: Any,
) -> None:
    """Issue #10.3: the person signs up twice (the first mail was slow) and uses the link of the
    first mail: its page shows the button and the first request's wording, the button confirms,
    and the confirm event names that request and that wording (CC-3, CR-1)."""
    first_wording = "ニュースレター（広告を含む）の受け取りに同意します。初版の文言"
    second_wording = "ニュースレター（広告を含む）の受け取りに同意します。改訂版の文言"
    email = "hanako@example.jp"
    # The operator's site showed two versions of its wording, both registered for the list.
    for wording in (first_wording, second_wording):
        registered = await admin.post(f"/lists/{news_row.id}/consent-texts", json={"text": wording})
        assert registered.status_code == 201, registered.text
    assert (await json_signup(client, "news", email, consent_text=first_wording)).status_code == 202
    assert (await outbox()).sent == 1
    assert (
        await json_signup(client, "news", email, consent_text=second_wording)
    ).status_code == 202
    assert (await outbox()).sent == 1
    first_mail, second_mail = smtp_server.messages_to(email)
    # Each mail quotes the wording recorded with its own request, in both parts (CR-1).
    for mail, wording, other in (
        (first_mail, first_wording, second_wording),
        (second_mail, second_wording, first_wording),
    ):
        assert wording in text_part(mail.message)
        assert wording in html_part(mail.message)
        assert other not in text_part(mail.message)
    first_path = confirm_url_in(first_mail).removeprefix(BASE_URL)
    second_path = confirm_url_in(second_mail).removeprefix(BASE_URL)

    page = await client.get(first_path)
    assert page.status_code == 200
    shown = read_page(page.text)
    [form] = shown.forms()
    assert form.attrs["action"] == first_path
    assert first_wording in shown.text
    assert second_wording not in shown.text

    done = await client.post(first_path)
    assert done.status_code == 200
    assert "ご登録が完了しました" in done.text
    first_grant, second_grant, confirm = await events_of(runtime, email)
    assert confirm.kind == ConsentEventKind.CONFIRM
    assert confirm.evidence == {
        "grant_event_id": first_grant.id,
        "wording_shown_at_confirmation": True,
        "wording_quoted_in_mail": True,  # registered: the mail quoted it
    }
    assert confirm.consent_text_hash == first_grant.consent_text_hash
    assert first_grant.consent_text_hash != second_grant.consent_text_hash
    async with runtime.sessionmaker() as session:
        confirmed_text = await session.scalar(
            select(ConsentText.text).where(ConsentText.hash == confirm.consent_text_hash)
        )
    assert confirmed_text == first_wording
    active = await subscription_of(runtime, email, news_row.id)
    assert active is not None
    assert active.status == SubscriptionStatus.ACTIVE
    assert active.grant_event_id == first_grant.id
    async with runtime.sessionmaker() as session:
        assert (await check_gate(session, active.subscriber_id, news_row.id)).consent_event_id == (
            confirm.id
        )

    # The second mail's link now says it is done, on GET as on POST, and records nothing.
    for response in (await client.get(second_path), await client.post(second_path)):
        assert response.status_code == 200
        assert "すでに確認済み" in response.text
        assert read_page(response.text).forms() == []
    assert len(await events_of(runtime, email)) == 3


async def test_cc3_a_link_that_cannot_confirm_says_so_already_on_get(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    """Issue #10.3: a request withdrawn by an opt-out is over. Its link shows no button but the
    400 page at once, and still does after a new signup makes the subscription pending again;
    only the new request's link confirms (CC-3, OO-6)."""
    email = "hanako@example.jp"
    before_optout = await _pending(client, runtime, email, news_row.id)
    subscriber = await subscriber_by_email(runtime, email)
    assert subscriber is not None
    unsubscribe = runtime.signer.unsubscribe_token(
        subscriber.id, news_row.id, subscriber.address_hash
    )
    assert (await client.post(f"/unsubscribe/{unsubscribe}")).status_code == 200

    for response in (
        await client.get(f"/confirm/{before_optout}"),
        await client.post(f"/confirm/{before_optout}"),
    ):
        _assert_plain_400_page(response)
        # The request is over: the page says so and what the person can do next.
        page = read_page(response.text)
        assert "すでに使えなくなっています" in page.text
        assert f"{BASE_URL}/subscribe/{news_row.slug}" in page.text
        assert SENDER_NAME in page.text
        assert page.forms() == []

    # The person signs up again: pending again, on a new request.
    after_optout = await _pending(client, runtime, email, news_row.id)
    for response in (
        await client.get(f"/confirm/{before_optout}"),
        await client.post(f"/confirm/{before_optout}"),
    ):
        _assert_plain_400_page(response)
    still = await subscription_of(runtime, email, news_row.id)
    assert still is not None
    assert still.status == SubscriptionStatus.PENDING
    assert [e.kind for e in await events_of(runtime, email)] == ["grant", "withdraw", "grant"]

    page = await client.get(f"/confirm/{after_optout}")
    assert page.status_code == 200
    assert len(read_page(page.text).forms()) == 1
    assert (await client.post(f"/confirm/{after_optout}")).status_code == 200
    *_, new_grant, confirm = await events_of(runtime, email)
    assert confirm.kind == ConsentEventKind.CONFIRM
    assert confirm.evidence["grant_event_id"] == new_grant.id


async def test_cc3_a_strangers_unregistered_wording_is_not_mailed_only_shown_on_the_page(
    client: httpx.AsyncClient,
    runtime: Runtime,
    news_row: MailingList,
    smtp_server: SmtpServer,
    outbox: Any,
) -> None:
    """CC-3: the confirmation mail carries nothing but the request. A wording the operator did
    not write or register (anyone can post one to a list that does not require registered
    wordings) is not relayed to the address it names; the confirm page, which only the
    address's owner opens, shows it, and the mail says so (CR-1)."""
    advert = "格安セール開催中！今すぐ https://spam.example/ へ"
    email = "hanako@example.jp"
    assert (await json_signup(client, "news", email, consent_text=advert)).status_code == 202
    assert (await outbox()).sent == 1
    [mail] = smtp_server.messages_to(email)
    for part in (text_part(mail.message), html_part(mail.message)):
        assert "spam.example" not in part
        assert "格安セール" not in part
        assert "確認ページに表示されます" in part
    page = await client.get(confirm_url_in(mail).removeprefix(BASE_URL))
    assert page.status_code == 200
    assert advert in read_page(page.text).text
    # The ledger says where the person saw it: on the page, not in the mail (CR-1).
    assert (await client.post(confirm_url_in(mail).removeprefix(BASE_URL))).status_code == 200
    *_, confirm = await events_of(runtime, email)
    assert confirm.evidence["wording_shown_at_confirmation"] is True
    assert confirm.evidence["wording_quoted_in_mail"] is False
