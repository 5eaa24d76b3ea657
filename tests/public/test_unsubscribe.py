"""The unsubscribe page and RFC 8058 one-click: OO-1 .. OO-7."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import time_machine
from itsdangerous import URLSafeSerializer
from sqlalchemy import select

from app.models import ConsentEvent, MailingList, OutboxMessage, Suppression
from app.models.enums import (
    ConsentEventKind,
    ConsentMethod,
    OutboxStatus,
    SubscriptionStatus,
    SuppressionScope,
)
from app.runtime import Runtime
from app.subscriptions.repository import GateVerdict, check_gate
from app.tokens import HASH_PREFIX_LENGTH, UNSUBSCRIBE_SALT, TokenSigner
from tests.conftest import TEST_KEYS
from tests.factories import SENDER_NAME, subscriber_by_email, subscription_of
from tests.public.conftest import confirm_url_in, json_signup
from tests.public.html import read_page
from tests.queries import events_of
from tests.smtp import SmtpServer

EMAIL = "hanako@example.jp"


async def _active_on_both(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList, weekly: MailingList
) -> str:
    """Hanako is an active, confirmed subscriber of both lists; returns her news-list token."""
    assert (await json_signup(client, "news", EMAIL)).status_code == 202
    pending = await subscription_of(runtime, EMAIL, news_row.id)
    assert pending is not None
    assert pending.grant_event_id is not None
    confirm = await client.post(f"/confirm/{runtime.signer.confirm_token(pending.grant_event_id)}")
    assert confirm.status_code == 200
    assert (await json_signup(client, "weekly", EMAIL)).status_code == 200
    subscriber = await subscriber_by_email(runtime, EMAIL)
    assert subscriber is not None
    return runtime.signer.unsubscribe_token(subscriber.id, news_row.id, subscriber.address_hash)


async def _statuses(runtime: Runtime, *lists: MailingList) -> list[str]:
    found = [await subscription_of(runtime, EMAIL, m.id) for m in lists]
    return [s.status if s is not None else "none" for s in found]


async def _withdrawals(runtime: Runtime) -> list[ConsentEvent]:
    return [e for e in await events_of(runtime, EMAIL) if e.kind == ConsentEventKind.WITHDRAW]


async def _suppressions(runtime: Runtime) -> list[tuple[str, int]]:
    async with runtime.sessionmaker() as session:
        rows = (await session.scalars(select(Suppression).order_by(Suppression.id))).all()
    return [(row.scope, row.scope_ref) for row in rows]


def _assert_no_redirect_no_cookie(response: httpx.Response) -> None:
    assert response.status_code == 200
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers


async def test_oo3_oo5_get_shows_one_button_and_the_scope_choice_and_changes_nothing(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList, weekly: MailingList
) -> None:
    token = await _active_on_both(client, runtime, news_row, weekly)
    for _ in range(3):  # a link scanner may open it several times
        response = await client.get(f"/unsubscribe/{token}")
        assert response.status_code == 200
    page = read_page(response.text)
    assert page.html_lang == "ja"
    [form] = page.forms()
    assert form.attrs["method"] == "post"
    assert form.attrs["action"] == f"/unsubscribe/{token}"
    buttons = [e for e in page.elements if e.tag == "button"]
    assert len(buttons) == 1
    assert "配信を停止する" in page.text
    sender_choice, list_choice = page.inputs("scope")
    assert sender_choice.attrs["value"] == "sender"
    assert "checked" in sender_choice.attrs  # OO-5: every list of the sender by default
    assert list_choice.attrs["value"] == "list"
    assert "checked" not in list_choice.attrs
    assert SENDER_NAME in page.label_for("scope-sender")
    assert "承諾ニュース" in page.label_for("scope-list")
    # OO-2: nothing else to fill in; the address is shown masked only.
    assert [e.attrs.get("type") for e in page.elements if e.tag == "input"] == ["radio", "radio"]
    assert EMAIL not in response.text
    assert "h***@example.jp" in page.text

    assert await _statuses(runtime, news_row, weekly) == ["active", "active"]
    assert await _withdrawals(runtime) == []
    assert await _suppressions(runtime) == []


async def test_oo5_page_post_with_this_list_only(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList, weekly: MailingList
) -> None:
    token = await _active_on_both(client, runtime, news_row, weekly)
    response = await client.post(f"/unsubscribe/{token}", data={"scope": "list"})
    _assert_no_redirect_no_cookie(response)
    assert "配信を停止しました" in response.text
    assert "「承諾ニュース」をお送りすることはありません" in response.text
    assert await _statuses(runtime, news_row, weekly) == ["unsubscribed", "active"]
    [withdrawal] = await _withdrawals(runtime)
    assert withdrawal.method == ConsentMethod.UNSUBSCRIBE_PAGE
    assert withdrawal.scope == SuppressionScope.LIST
    assert withdrawal.list_id == news_row.id
    assert withdrawal.ip == "203.0.113.7"
    assert await _suppressions(runtime) == [(SuppressionScope.LIST, news_row.id)]


async def test_oo5_oo7_page_post_stops_every_list_of_the_sender_and_says_no_more_mail(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList, weekly: MailingList
) -> None:
    token = await _active_on_both(client, runtime, news_row, weekly)
    response = await client.post(f"/unsubscribe/{token}", data={"scope": "sender"})
    _assert_no_redirect_no_cookie(response)
    assert f"今後、{SENDER_NAME}からメールをお送りすることはありません" in response.text
    # OO-7: not even a confirmation of the opt-out, and only a new signup (by anybody) can
    # bring a mail, at most one a day: what the page says is what the service does.
    assert "この手続きの完了をお知らせするメールは、お送りしません" in response.text
    assert "1日に1通まで" in response.text
    assert await _statuses(runtime, news_row, weekly) == ["unsubscribed", "unsubscribed"]
    [withdrawal] = await _withdrawals(runtime)
    assert withdrawal.scope == SuppressionScope.SENDER
    assert withdrawal.list_id is None
    assert await _suppressions(runtime) == [(SuppressionScope.SENDER, news_row.sender_id)]
    subscriber = await subscriber_by_email(runtime, EMAIL)
    assert subscriber is not None
    async with runtime.sessionmaker() as session:
        for mailing_list in (news_row, weekly):
            gate = await check_gate(session, subscriber.id, mailing_list.id)
            assert gate.verdict == GateVerdict.SUPPRESSED


async def test_oo3_one_click_urlencoded_is_200_without_redirect_or_cookie_and_repeats_harmlessly(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList, weekly: MailingList
) -> None:
    token = await _active_on_both(client, runtime, news_row, weekly)
    for _ in range(3):
        response = await client.post(
            f"/unsubscribe/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={
                "content-type": "application/x-www-form-urlencoded",
                "user-agent": "GoogleOneClick/1.0",
            },
        )
        _assert_no_redirect_no_cookie(response)
    assert await _statuses(runtime, news_row, weekly) == ["unsubscribed", "unsubscribed"]
    [withdrawal] = await _withdrawals(runtime)  # one event, however often it is repeated
    assert withdrawal.method == ConsentMethod.ONE_CLICK
    assert withdrawal.scope == SuppressionScope.SENDER
    assert withdrawal.user_agent == "GoogleOneClick/1.0"


async def test_oo3_one_click_multipart_is_200_without_redirect_or_cookie_and_repeats_harmlessly(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList, weekly: MailingList
) -> None:
    token = await _active_on_both(client, runtime, news_row, weekly)
    for _ in range(2):
        response = await client.post(
            f"/unsubscribe/{token}", files={"List-Unsubscribe": (None, "One-Click")}
        )
        assert response.request.headers["content-type"].startswith("multipart/form-data")
        _assert_no_redirect_no_cookie(response)
    assert await _statuses(runtime, news_row, weekly) == ["unsubscribed", "unsubscribed"]
    [withdrawal] = await _withdrawals(runtime)
    assert withdrawal.method == ConsentMethod.ONE_CLICK
    # The one-click POST stops the whole sender, even if it names a narrower scope.
    assert withdrawal.scope == SuppressionScope.SENDER


async def test_oo3_tampered_unsubscribe_link_is_a_plain_400_page(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList, weekly: MailingList
) -> None:
    token = await _active_on_both(client, runtime, news_row, weekly)
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    stranger = TokenSigner(["someone-elses-key-0123456789"], confirm_max_age=3600)
    subscriber = await subscriber_by_email(runtime, EMAIL)
    assert subscriber is not None
    for bad in (
        tampered,
        "x",
        stranger.unsubscribe_token(subscriber.id, news_row.id, subscriber.address_hash),
        runtime.signer.confirm_token(1),  # a confirm token is not an unsubscribe token
        runtime.signer.unsubscribe_token(subscriber.id, 999_999, subscriber.address_hash),
    ):
        for response in (
            await client.get(f"/unsubscribe/{bad}"),
            await client.post(f"/unsubscribe/{bad}", data={"List-Unsubscribe": "One-Click"}),
        ):
            assert response.status_code == 400
            assert response.headers["content-type"].startswith("text/html")
            assert "このリンクは無効か" in response.text
            assert "set-cookie" not in response.headers
    assert await _statuses(runtime, news_row, weekly) == ["active", "active"]
    assert await _withdrawals(runtime) == []


async def test_oo4_token_with_an_empty_or_short_address_prefix_is_a_plain_400_page(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList, weekly: MailingList
) -> None:
    """Signed with the real key but naming no (or part of an) address-hash prefix: such a token
    once matched whichever subscriber held the id. Now it is refused like any bad link."""
    await _active_on_both(client, runtime, news_row, weekly)
    subscriber = await subscriber_by_email(runtime, EMAIL)
    assert subscriber is not None
    # Exactly what an attacker holding the key (or finding a signing oracle) would write.
    forger = URLSafeSerializer(list(reversed(TEST_KEYS)), salt=UNSUBSCRIBE_SALT)
    full = subscriber.address_hash[:HASH_PREFIX_LENGTH]
    for prefix in ("", full[:1], full[:-1], full.upper(), full + "0", " " * HASH_PREFIX_LENGTH):
        forged = forger.dumps([subscriber.id, news_row.id, prefix])
        for response in (
            await client.get(f"/unsubscribe/{forged}"),
            await client.post(f"/unsubscribe/{forged}", data={"List-Unsubscribe": "One-Click"}),
        ):
            assert response.status_code == 400, prefix
            assert "このリンクは無効か" in response.text
            assert "ha***" not in response.text  # no masked address of anybody
    assert await _statuses(runtime, news_row, weekly) == ["active", "active"]
    assert await _withdrawals(runtime) == []
    # The genuine token, with the full prefix, still works.
    genuine = forger.dumps([subscriber.id, news_row.id, full])
    assert (await client.get(f"/unsubscribe/{genuine}")).status_code == 200


async def test_oo4_link_signed_with_an_older_key_still_unsubscribes(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList, weekly: MailingList
) -> None:
    await _active_on_both(client, runtime, news_row, weekly)
    subscriber = await subscriber_by_email(runtime, EMAIL)
    assert subscriber is not None
    # Mailed before the key rotation, when the second key in SHODAKU_SECRET_KEYS was the newest.
    before_rotation = TokenSigner([TEST_KEYS[1]], confirm_max_age=3600)
    token = before_rotation.unsubscribe_token(subscriber.id, news_row.id, subscriber.address_hash)
    assert token != runtime.signer.unsubscribe_token(
        subscriber.id, news_row.id, subscriber.address_hash
    )
    assert (await client.get(f"/unsubscribe/{token}")).status_code == 200
    response = await client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    _assert_no_redirect_no_cookie(response)
    assert await _statuses(runtime, news_row, weekly) == ["unsubscribed", "unsubscribed"]


async def test_oo4_link_of_an_erased_or_replaced_person_still_answers_unsubscribed(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList, weekly: MailingList
) -> None:
    """After an erasure the token's subscriber is gone (or its id re-used by someone else):
    the link keeps working, shows no address, and changes nobody's subscription."""
    await _active_on_both(client, runtime, news_row, weekly)
    subscriber = await subscriber_by_email(runtime, EMAIL)
    assert subscriber is not None
    gone = runtime.signer.unsubscribe_token(987_654, news_row.id, "a" * 64)
    someone_else = runtime.signer.unsubscribe_token(subscriber.id, news_row.id, "f" * 64)
    for token in (gone, someone_else):
        page = await client.get(f"/unsubscribe/{token}")
        assert page.status_code == 200
        assert "@" not in read_page(page.text).text.split("発信者")[0]
        response = await client.post(f"/unsubscribe/{token}")
        _assert_no_redirect_no_cookie(response)
        assert "配信を停止しました" in response.text
    assert await _statuses(runtime, news_row, weekly) == ["active", "active"]
    assert await _withdrawals(runtime) == []


async def test_oo7_after_unsubscribing_no_confirmation_mail_is_sent(
    client: httpx.AsyncClient,
    runtime: Runtime,
    news_row: MailingList,
    smtp_server: SmtpServer,
    outbox: Any,
) -> None:
    assert (await json_signup(client, "news", EMAIL)).status_code == 202
    subscriber = await subscriber_by_email(runtime, EMAIL)
    assert subscriber is not None
    token = runtime.signer.unsubscribe_token(subscriber.id, news_row.id, subscriber.address_hash)
    # The person changes their mind before the confirmation mail has gone out.
    assert (await client.post(f"/unsubscribe/{token}")).status_code == 200
    run = await outbox()
    assert run.sent == 0
    assert run.dropped == 1
    assert smtp_server.messages_to(EMAIL) == []
    async with runtime.sessionmaker() as session:
        statuses = (await session.scalars(select(OutboxMessage.status))).all()
    assert list(statuses) == [OutboxStatus.DROPPED]


async def test_oo6_suppressed_address_resubscribing_needs_its_own_confirmation(
    client: httpx.AsyncClient,
    runtime: Runtime,
    news_row: MailingList,
    weekly: MailingList,
    smtp_server: SmtpServer,
    outbox: Any,
) -> None:
    token = await _active_on_both(client, runtime, news_row, weekly)
    assert (await client.post(f"/unsubscribe/{token}")).status_code == 200
    subscriber = await subscriber_by_email(runtime, EMAIL)
    assert subscriber is not None

    # Re-subscribing to the single opt-in list answers as usual, but is not active yet.
    again = await json_signup(client, "weekly", EMAIL)
    assert again.status_code == 200
    assert again.json()["status"] == "subscribed"
    assert await _statuses(runtime, weekly) == [SubscriptionStatus.PENDING]
    async with runtime.sessionmaker() as session:
        gate = await check_gate(session, subscriber.id, weekly.id)
    assert gate.verdict == GateVerdict.SUPPRESSED
    assert await _suppressions(runtime) == [(SuppressionScope.SENDER, news_row.sender_id)]

    # A link that is not this request's confirmation (a stale one from the first signup)
    # does not lift anything.
    news_grant = next(e for e in await events_of(runtime, EMAIL) if e.list_id == news_row.id)
    stale = await client.post(f"/confirm/{runtime.signer.confirm_token(news_grant.id)}")
    assert stale.status_code == 400
    assert await _suppressions(runtime) == [(SuppressionScope.SENDER, news_row.sender_id)]

    # Only the confirmation mailed for this request lifts the suppression, and only for the
    # list confirmed (OO-6): the sender-wide suppression stays for the sender's other lists.
    assert (await outbox()).sent == 1
    [mail] = smtp_server.messages_to(EMAIL)
    url = confirm_url_in(mail)
    assert (await client.post(url)).status_code == 200
    assert await _suppressions(runtime) == [(SuppressionScope.SENDER, news_row.sender_id)]
    async with runtime.sessionmaker() as session:
        gate = await check_gate(session, subscriber.id, weekly.id)
        news_gate = await check_gate(session, subscriber.id, news_row.id)
    assert gate.mailable
    assert news_gate.verdict == GateVerdict.SUPPRESSED
    # The other list stays unsubscribed: confirming one list re-subscribes only that one.
    assert await _statuses(runtime, news_row, weekly) == ["unsubscribed", "active"]


async def test_oo7_a_stranger_gets_at_most_one_confirmation_a_day_sent_to_an_opted_out_address(
    app: Any,
    settings: Any,
    client: httpx.AsyncClient,
    runtime: Runtime,
    news_row: MailingList,
    weekly: MailingList,
    smtp_server: SmtpServer,
    outbox: Any,
) -> None:
    """OO-7: after opting out, the page promises no mail but, at most, one confirmation request
    a day should somebody sign the address up again. A stranger typing it into every form of
    the instance (other senders too), as often as the per-address limit allows and across a
    restart, gets one mail to it a day; the answers are the usual ones."""
    from app.main import create_app
    from tests.factories import make_list, make_sender

    # Off before the first signup builds the limiter: not the in-memory limit at work here.
    runtime.settings.signup_limit_per_address = 0
    token = await _active_on_both(client, runtime, news_row, weekly)
    assert (await client.post(f"/unsubscribe/{token}")).status_code == 200
    await outbox()  # the confirmation of the first signup, sent before the opt-out
    smtp_server.received.clear()
    other = await make_sender(runtime, name="別会社")
    await make_list(runtime, other, slug="elsewhere", name="別会社ニュース")

    usual = {
        slug: (await json_signup(client, slug, f"new-{slug}@example.jp")).text
        for slug in ("news", "weekly", "elsewhere")
    }
    for _ in range(3):
        for slug in ("news", "weekly", "elsewhere"):
            answer = await json_signup(client, slug, EMAIL)
            assert answer.status_code in (200, 202)
            assert answer.text == usual[slug]  # no oracle: same answer mailed or not
    await outbox()
    assert len(smtp_server.messages_to(EMAIL)) == 1

    # Another process (or a restart) knows it too: the count is in the database.
    restarted = create_app(settings, run_outbox=False, run_sender=False)
    try:
        await restarted.state.runtime.hasher()
        transport = httpx.ASGITransport(app=restarted, client=("198.51.100.77", 4000))
        async with httpx.AsyncClient(transport=transport, base_url=client.base_url) as again:
            assert (await json_signup(again, "elsewhere", EMAIL)).text == usual["elsewhere"]
    finally:
        await restarted.state.transport.close()
        await restarted.state.runtime.dispose()
    await outbox()
    assert len(smtp_server.messages_to(EMAIL)) == 1

    # The held-back signups recorded nothing: only the one mailed request is pending.
    grants = [e for e in await events_of(runtime, EMAIL) if e.kind == ConsentEventKind.GRANT]
    assert len(grants) == 3  # news and weekly at the start, and the one mailed now
    async with runtime.sessionmaker() as session:
        held = (
            await session.scalars(
                select(OutboxMessage.last_error).where(OutboxMessage.consent_event_id.is_(None))
            )
        ).all()
    assert held
    assert set(held) == {"suppressed address: at most one confirmation a day"}

    # A day later, one more.
    with time_machine.travel(datetime.now(UTC) + timedelta(days=1, minutes=1), tick=False):
        for slug in ("news", "elsewhere"):
            assert (await json_signup(client, slug, EMAIL)).text == usual[slug]
        await outbox()
    assert len(smtp_server.messages_to(EMAIL)) == 2


async def test_oo3_the_page_of_someone_already_withdrawn_says_so(
    client: httpx.AsyncClient, runtime: Runtime, weekly: MailingList
) -> None:
    """Pages know where they stand: a link opened again after the opt-out says the list is
    already stopped (a repeated POST stays harmless, OO-3), instead of asking as if nothing
    had happened; a person still subscribed is not told so."""
    email = "hanako@example.jp"
    assert (await json_signup(client, "weekly", email)).status_code == 200
    subscriber = await subscriber_by_email(runtime, email)
    assert subscriber is not None
    link = "/unsubscribe/" + runtime.signer.unsubscribe_token(
        subscriber.id, weekly.id, subscriber.address_hash
    )
    before = read_page((await client.get(link)).text)
    assert "already stopped" not in before.text
    assert (await client.post(link, data={"scope": "list"})).status_code == 200
    after = await client.get(link)
    assert after.status_code == 200
    page = read_page(after.text)
    assert f"“{weekly.name}” is already stopped for this address" in page.text
    # Stopping every list of the sender is still offered, and repeating changes nothing.
    assert len(page.forms()) == 1
    assert (await client.post(link, data={"scope": "list"})).status_code == 200
