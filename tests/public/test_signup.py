"""The hosted signup form and POST /subscribe/{slug}: consent, validation, enumeration, abuse."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from app.models import (
    ConsentEvent,
    ConsentText,
    MailingList,
    OutboxMessage,
    Sender,
    Subscriber,
    Subscription,
)
from app.models.enums import ConsentEventKind, ConsentMethod, SubscriptionStatus
from app.runtime import Runtime
from app.subscriptions.repository import check_gate
from tests.conftest import BASE_URL
from tests.factories import (
    EN_PURPOSE,
    PURPOSE,
    SENDER_NAME,
    count,
    subscriber_by_email,
    subscription_of,
)
from tests.public.conftest import consent_wording_of, form_signup, json_signup
from tests.public.html import read_page
from tests.queries import events_of
from tests.smtp import SmtpServer


async def _nothing_stored(runtime: Runtime) -> None:
    assert await count(runtime, Subscriber) == 0
    assert await count(runtime, Subscription) == 0
    assert await count(runtime, ConsentEvent) == 0
    assert await count(runtime, OutboxMessage) == 0


# --- the form ----------------------------------------------------------------------------------


async def test_cc2_cc5_japanese_form_has_unticked_box_and_the_wording_beside_the_button(
    client: httpx.AsyncClient, news_row: MailingList
) -> None:
    response = await client.get("/subscribe/news")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = read_page(response.text)
    assert page.html_lang == "ja"

    box = page.input("consent")
    assert box.attrs["type"] == "checkbox"
    assert "checked" not in box.attrs  # CC-2: never pre-ticked
    wording = page.label_for("consent")
    assert SENDER_NAME in wording  # the sender's formal name (CC-2)
    assert "広告" in wording  # that advertising mail will be sent (CC-2)
    assert PURPOSE in wording  # the purpose of use (CC-5)
    assert "メールマガジン" in wording
    # The exact wording shown is what the form posts back as evidence (CR-1).
    assert page.input("consent_text").attrs["value"] == wording
    assert page.input("consent_text").attrs["type"] == "hidden"
    # The button comes right after the wording, inside the one form.
    kinds = [e.tag for e in page.elements]
    assert kinds.index("button") > [i for i, e in enumerate(page.elements) if e.tag == "label"][-1]
    assert "同意して登録する" in page.text
    assert "required" in page.input("email").attrs
    assert "〒100-0001 東京都千代田区千代田1-1" in page.text  # sender identity in the footer
    assert "support@shodaku-shoji.example" in page.text


async def test_cc2_cc5_english_form_on_request_with_the_same_items(
    client: httpx.AsyncClient, news_row: MailingList
) -> None:
    response = await client.get("/subscribe/news", params={"lang": "en"})
    assert response.status_code == 200
    page = read_page(response.text)
    assert page.html_lang == "en"
    assert "checked" not in page.input("consent").attrs
    wording = page.label_for("consent")
    assert "I agree to receive the newsletter" in wording
    assert "advertising" in wording
    assert SENDER_NAME in wording
    assert PURPOSE in wording
    assert page.input("consent_text").attrs["value"] == wording
    assert "Agree and subscribe" in page.text


async def test_cc5_form_defaults_to_the_lists_language(
    client: httpx.AsyncClient, weekly: MailingList
) -> None:
    page = read_page((await client.get("/subscribe/weekly")).text)
    assert page.html_lang == "en"
    assert EN_PURPOSE in page.label_for("consent")
    # An unknown language falls back to the list's, rather than failing.
    assert read_page((await client.get("/subscribe/weekly?lang=fr")).text).html_lang == "en"


async def test_unknown_list_is_a_404_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/subscribe/no-such-list")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "登録フォームは見つかりませんでした" in response.text
    # In English by the page's switch, or for a browser that prefers English.
    switch = read_page(response.text).link("language-switch")
    assert switch == "/subscribe/no-such-list?lang=en"
    for english in (
        await client.get(switch),
        await client.get("/subscribe/no-such-list", headers={"Accept-Language": "en-GB,en"}),
    ):
        assert english.status_code == 404
        assert "There is no signup form" in english.text
    answer = await client.post("/subscribe/no-such-list", json={"email": "a@example.jp"})
    assert answer.status_code == 404
    assert answer.json()["error"] == "NotFound"
    assert answer.json()["detail"] == "該当するリストはありません。"


async def test_form_escapes_what_the_sender_typed(
    client: httpx.AsyncClient, runtime: Runtime, sender_row: Sender
) -> None:
    from tests.factories import make_list

    await make_list(runtime, sender_row, slug="x", name="<script>alert(1)</script>")
    response = await client.get("/subscribe/x")
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;" in response.text


# --- consent required --------------------------------------------------------------------------


async def test_cc1_form_post_without_the_box_ticked_is_422_and_stores_nothing(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    response = await form_signup(client, "news", "hanako@example.jp", consent=None)
    assert response.status_code == 422
    page = read_page(response.text)
    assert "チェックを入れてください" in page.text
    assert "checked" not in page.input("consent").attrs  # shown again, still unticked
    assert page.input("email").attrs["value"] == "hanako@example.jp"  # what they typed is kept
    await _nothing_stored(runtime)


async def test_cc1_json_without_consent_true_is_422_and_stores_nothing(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    for consent in (False, None, "yes", 1):
        response = await json_signup(client, "news", "hanako@example.jp", consent=consent)
        assert response.status_code == 422, consent
        assert response.json()["error"] == "InvalidInput"
    missing = await client.post(
        "/subscribe/news", json={"email": "hanako@example.jp", "consent_text": "同意します"}
    )
    assert missing.status_code == 422
    assert "consent" in missing.json()["detail"]
    await _nothing_stored(runtime)


async def test_cr1_json_without_consent_text_is_422(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    for body in (
        {"email": "hanako@example.jp", "consent": True},
        {"email": "hanako@example.jp", "consent": True, "consent_text": "   "},
    ):
        response = await client.post("/subscribe/news", json=body)
        assert response.status_code == 422
        assert response.json()["error"] == "InvalidInput"
        assert "consent_text" in response.json()["detail"]
    await _nothing_stored(runtime)


async def test_sg4_invalid_address_is_422(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    for bad in ("not-an-address", "a@b", "taro@@example.jp", "taro@example.jp\r\nBcc: x@y.jp"):
        answer = await json_signup(client, "news", bad)
        assert answer.status_code == 422, bad
        assert answer.json() == {"error": "InvalidInput", "detail": answer.json()["detail"]}
        assert "email" in answer.json()["detail"]
    page = await form_signup(client, "news", "not-an-address")
    assert page.status_code == 422
    assert "メールアドレスの形式が正しくありません" in page.text
    await _nothing_stored(runtime)


async def test_bad_bodies_are_4xx_not_500(client: httpx.AsyncClient, news_row: MailingList) -> None:
    broken = await client.post(
        "/subscribe/news", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert broken.json()["error"] == "InvalidInput"
    plain = await client.post(
        "/subscribe/news", content=b"email=x", headers={"content-type": "text/plain"}
    )
    assert plain.status_code == 415
    assert plain.json()["error"] == "UnsupportedMediaType"
    listed = await client.post("/subscribe/news", json=["a@example.jp"])
    assert listed.status_code == 422


async def test_sg4_full_width_address_is_normalised(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    answer = await json_signup(client, "news", "ｈａｎａｋｏ＠ＥＸＡＭＰＬＥ．ｊｐ")
    assert answer.status_code == 202
    assert await subscriber_by_email(runtime, "hanako@example.jp") is not None
    page = await form_signup(client, "news", "　ｊｉｒｏ＠ｅｘａｍｐｌｅ．ｊｐ　")
    assert page.status_code == 202
    assert await subscriber_by_email(runtime, "jiro@example.jp") is not None


# --- what is recorded --------------------------------------------------------------------------


async def test_cr1_form_signup_records_the_wording_shown_and_its_circumstances(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    shown = consent_wording_of((await client.get("/subscribe/news")).text)
    response = await client.post(
        "/subscribe/news",
        data={
            "email": "hanako@example.jp",
            "name": "山田花子",
            "consent": "yes",
            # As a browser sends it: line breaks become CRLF on submit.
            "consent_text": shown.replace("\n", "\r\n"),
            "lang": "ja",
            "website": "",
        },
        headers={"user-agent": "Mozilla/5.0 (test)"},
    )
    assert response.status_code == 202
    [grant] = await events_of(runtime, "hanako@example.jp")
    assert grant.kind == ConsentEventKind.GRANT
    assert grant.method == ConsentMethod.WEB_FORM
    assert grant.ip == "203.0.113.7"
    assert grant.user_agent == "Mozilla/5.0 (test)"
    assert grant.source_url == f"{BASE_URL}/subscribe/news?lang=ja"
    assert grant.purpose == PURPOSE
    assert grant.double_opt_in_requested_at is not None
    async with runtime.sessionmaker() as session:
        text = await session.get(ConsentText, grant.consent_text_hash)
    assert text is not None
    assert text.text == shown
    subscriber = await subscriber_by_email(runtime, "hanako@example.jp")
    assert subscriber is not None
    assert subscriber.name == "山田花子"


async def test_cc2_a_forged_wording_in_a_form_post_is_not_recorded(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    shown = consent_wording_of((await client.get("/subscribe/news")).text)
    response = await form_signup(
        client, "news", "hanako@example.jp", consent_text="Partner sites may email you."
    )
    assert response.status_code == 202
    [grant] = await events_of(runtime, "hanako@example.jp")
    async with runtime.sessionmaker() as session:
        texts = list((await session.scalars(select(ConsentText.text))).all())
    assert texts == [shown]
    assert grant.consent_text_hash is not None


async def test_cr1_json_signup_records_method_api_and_the_given_wording(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    response = await json_signup(
        client,
        "news",
        "hanako@example.jp",
        source_url="https://shop.example.jp/newsletter",
        name="Hanako",
    )
    assert response.status_code == 202
    [grant] = await events_of(runtime, "hanako@example.jp")
    assert grant.method == ConsentMethod.API
    assert grant.source_url == "https://shop.example.jp/newsletter"
    async with runtime.sessionmaker() as session:
        text = await session.get(ConsentText, grant.consent_text_hash)
    assert text is not None
    assert text.text == "ニュースレターの受け取りに同意します（株式会社承諾商事）"


async def test_multipart_form_posts_work_too(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    shown = consent_wording_of((await client.get("/subscribe/news")).text)
    response = await client.post(
        "/subscribe/news",
        files={
            "email": (None, "hanako@example.jp"),
            "consent": (None, "yes"),
            "consent_text": (None, shown),
        },
    )
    assert response.status_code == 202
    assert await subscription_of(runtime, "hanako@example.jp", news_row.id) is not None


# --- the answers -------------------------------------------------------------------------------


async def test_cc3_double_opt_in_signup_answers_202_pending_and_wakes_the_outbox(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    assert not runtime.outbox_wakeup.is_set()
    response = await json_signup(client, "news", "hanako@example.jp")
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    # The background task ran after the response, i.e. after the unit of work committed.
    assert runtime.outbox_wakeup.is_set()
    subscription = await subscription_of(runtime, "hanako@example.jp", news_row.id)
    assert subscription is not None
    assert subscription.status == SubscriptionStatus.PENDING
    async with runtime.sessionmaker() as session:
        assert not (await check_gate(session, subscription.subscriber_id, news_row.id)).mailable
    assert await count(runtime, OutboxMessage) == 1

    page = await form_signup(client, "news", "jiro@example.jp")
    assert page.status_code == 202
    assert "確認メールをお送りしました" in page.text
    assert "7日間" in page.text


async def test_cc1_single_opt_in_signup_answers_200_subscribed_and_is_mailable(
    client: httpx.AsyncClient, runtime: Runtime, weekly: MailingList
) -> None:
    response = await json_signup(client, "weekly", "hanako@example.jp")
    assert response.status_code == 200
    assert response.json()["status"] == "subscribed"
    subscription = await subscription_of(runtime, "hanako@example.jp", weekly.id)
    assert subscription is not None
    async with runtime.sessionmaker() as session:
        assert (await check_gate(session, subscription.subscriber_id, weekly.id)).mailable
    assert await count(runtime, OutboxMessage) == 0
    page = await form_signup(client, "weekly", "jiro@example.jp", lang="en")
    assert page.status_code == 200
    assert "Thank you for subscribing" in page.text


async def _known_in_every_state(
    client: httpx.AsyncClient, runtime: Runtime, slug: str, list_id: int
) -> dict[str, str]:
    """Addresses that are pending, active and suppressed on the list; returns state -> address."""
    addresses = {
        "pending": "pending@example.jp",
        "active": "active@example.jp",
        "suppressed": "suppressed@example.jp",
    }
    for state, address in addresses.items():
        assert (await json_signup(client, slug, address)).status_code in (200, 202)
        if state == "pending":
            continue
        subscription = await subscription_of(runtime, address, list_id)
        assert subscription is not None
        if subscription.status == SubscriptionStatus.PENDING:
            token = runtime.signer.confirm_token(subscription.grant_event_id or 0)
            assert (await client.post(f"/confirm/{token}")).status_code == 200
        if state == "suppressed":
            subscriber = await subscriber_by_email(runtime, address)
            assert subscriber is not None
            token = runtime.signer.unsubscribe_token(
                subscriber.id, list_id, subscriber.address_hash
            )
            assert (await client.post(f"/unsubscribe/{token}")).status_code == 200
    return addresses


async def test_same_answer_whether_or_not_the_address_is_known_double_opt_in(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    known = await _known_in_every_state(client, runtime, "news", news_row.id)
    answers = [await json_signup(client, "news", "stranger@example.jp")]
    answers += [await json_signup(client, "news", address) for address in known.values()]
    assert {a.status_code for a in answers} == {202}
    assert len({a.text for a in answers}) == 1
    pages = [await form_signup(client, "news", "stranger2@example.jp")]
    pages += [await form_signup(client, "news", address) for address in known.values()]
    assert {p.status_code for p in pages} == {202}
    assert len({p.text for p in pages}) == 1


async def test_same_answer_whether_or_not_the_address_is_known_single_opt_in(
    client: httpx.AsyncClient, runtime: Runtime, weekly: MailingList
) -> None:
    known = await _known_in_every_state(client, runtime, "weekly", weekly.id)
    answers = [await json_signup(client, "weekly", "stranger@example.jp")]
    answers += [await json_signup(client, "weekly", address) for address in known.values()]
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    # OO-6: behind the same answer, the suppressed address was not subscribed outright.
    suppressed = await subscription_of(runtime, known["suppressed"], weekly.id)
    assert suppressed is not None
    assert suppressed.status == SubscriptionStatus.PENDING


async def test_honeypot_gets_the_usual_answer_and_nothing_is_stored(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    usual = await form_signup(client, "news", "human@example.jp")
    bot = await form_signup(client, "news", "bot@example.jp", website="https://spam.example")
    assert bot.status_code == usual.status_code == 202
    assert bot.text == usual.text
    assert await subscriber_by_email(runtime, "bot@example.jp") is None
    assert await events_of(runtime, "bot@example.jp") == []
    assert await count(runtime, OutboxMessage) == 1  # the human's only
    bot_json = await json_signup(client, "news", "bot2@example.jp", website="x")
    assert bot_json.status_code == 202
    assert await subscriber_by_email(runtime, "bot2@example.jp") is None


# --- abuse limits ------------------------------------------------------------------------------


async def test_per_ip_limit_answers_429_to_that_client_only(
    app: object, client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    runtime.settings.signup_limit_per_ip = 2
    assert (await json_signup(client, "news", "one@example.jp")).status_code == 202
    assert (await json_signup(client, "news", "two@example.jp")).status_code == 202
    refused = await json_signup(client, "news", "three@example.jp")
    assert refused.status_code == 429
    assert refused.json()["error"] == "TooManyRequests"
    assert int(refused.headers["retry-after"]) >= 1
    page = await client.post(
        "/subscribe/news", data={"email": "three@example.jp", "consent": "yes", "lang": "en"}
    )
    assert page.status_code == 429
    assert page.headers["content-type"].startswith("text/html")
    assert "Please try again later" in page.text
    assert await subscriber_by_email(runtime, "three@example.jp") is None

    other = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("198.51.100.9", 5000)),  # type: ignore[arg-type]
        base_url=BASE_URL,
    )
    async with other:
        assert (await json_signup(other, "news", "three@example.jp")).status_code == 202


async def test_per_address_limit_answers_the_same_but_mails_nothing_more(
    client: httpx.AsyncClient,
    runtime: Runtime,
    sender_row: Sender,
    news_row: MailingList,
    smtp_server: SmtpServer,
    outbox: object,
) -> None:
    """Subscription bombing: one victim's address typed into many forms gets a bounded number
    of confirmation mails, and the forms answer as usual so they reveal nothing (CC-3)."""
    from tests.factories import make_list

    runtime.settings.signup_limit_per_address = 2
    slugs = ["news"]
    for n in range(3):
        slugs.append((await make_list(runtime, sender_row, slug=f"list-{n}", name=f"L{n}")).slug)
    answers = [await json_signup(client, slug, "victim@example.jp") for slug in slugs]
    # Another spelling of the same address counts as the same address.
    answers.append(await json_signup(client, "list-2", "ＶＩＣＴＩＭ@example.jp"))
    assert {a.status_code for a in answers} == {202}
    assert len({a.text for a in answers}) == 1
    assert len(await events_of(runtime, "victim@example.jp")) == 2
    assert await count(runtime, OutboxMessage) == 2
    await outbox()  # type: ignore[operator]
    assert len(smtp_server.messages_to("victim@example.jp")) == 2
    # Other addresses are not affected.
    assert (await json_signup(client, "list-2", "someone@example.jp")).status_code == 202
    assert await count(runtime, OutboxMessage) == 3


async def test_a_limit_of_zero_is_off(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    runtime.settings.signup_limit_per_ip = 0
    runtime.settings.signup_limit_per_address = 0
    for _ in range(5):
        assert (await json_signup(client, "news", "again@example.jp")).status_code == 202
    assert len(await events_of(runtime, "again@example.jp")) == 5


async def test_a_json_signup_nested_thousands_deep_is_a_422_not_a_500(
    client: httpx.AsyncClient, news_row: MailingList
) -> None:
    """Found in review: a 10 KB body of arrays 5,000 deep made the JSON parser recurse past its
    limit and answered 500 to anyone."""
    body = (
        '{"email": "hanako@example.jp", "consent": true, "consent_text": "x", "name": '
        + "[" * 5000
        + "]" * 5000
        + "}"
    )
    response = await client.post(
        "/subscribe/news", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidInput"


@pytest.mark.parametrize(
    "body", ["1" * 5000, '{"email": "a@example.jp", "consent": ' + "9" * 5000 + "}"]
)
async def test_a_json_signup_with_a_huge_number_is_a_422_not_a_500(
    client: httpx.AsyncClient, news_row: MailingList, body: str
) -> None:
    """Found in review: an integer literal past Python's 4,300-digit limit made json.loads raise
    a plain ValueError, answered 500 to anyone; nothing is recorded."""
    response = await client.post(
        "/subscribe/news", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidInput"
