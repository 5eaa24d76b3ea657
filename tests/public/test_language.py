"""A person's language, from signup on (issue #11): a person who signs up in English on a
Japanese list (``?lang=en``, the form's language switch, or their browser's Accept-Language) is
answered in English from then on: the confirmation mail, the confirm and unsubscribe pages and
their answers. JSON answers speak the page's language; every page links to itself in the other
language (CC-2, CC-3, CR-1)."""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.models import MailingList
from app.models.enums import SubscriptionStatus
from app.public.i18n import accept_language, consent_wording
from app.public.rate_limit import SignupLimits
from app.runtime import Runtime
from tests.conftest import BASE_URL
from tests.factories import PURPOSE, SENDER_NAME, subscriber_by_email, subscription_of
from tests.public.conftest import JSON_WORDING, confirm_url_in, html_part, json_signup, text_part
from tests.public.html import Page, read_page
from tests.queries import events_of
from tests.smtp import SmtpServer

ENGLISH_WORDING = consent_wording(
    "en", sender_name=SENDER_NAME, list_name="承諾ニュース", purpose=PURPOSE
)


async def _post_form(client: httpx.AsyncClient, page_url: str, email: str) -> httpx.Response:
    """Fill in the form found at ``page_url`` as a browser does: its hidden fields as they are,
    the address typed, the box ticked, posted to its action."""
    page = read_page((await client.get(page_url)).text)
    [form] = page.forms()
    data = {
        e.attrs["name"]: e.attrs.get("value") or ""
        for e in page.elements
        if e.tag == "input" and e.attrs.get("type") == "hidden" and e.attrs.get("name")
    }
    data.update({"email": email, "consent": "yes", "website": ""})
    action = form.attrs["action"]
    assert action
    return await client.post(action, data=data)


def _mail_to(smtp_server: SmtpServer, email: str) -> EmailMessage:
    [received] = smtp_server.messages_to(email)
    return received.message


def _assert_english_confirmation(message: EmailMessage) -> None:
    assert message["Subject"] == f"Please confirm your subscription to 承諾ニュース ({SENDER_NAME})"
    text = text_part(message)
    assert "If it was you, open the link below" in text
    assert "お申し込み" not in text
    assert '<html lang="en">' in html_part(message)


async def _signed_up_in_english(
    runtime: Runtime, news_row: MailingList, smtp_server: SmtpServer, outbox: Any, email: str
) -> str:
    """The stored language is en and the confirmation mail English; returns its confirm path."""
    subscription = await subscription_of(runtime, email, news_row.id)
    assert subscription is not None
    assert subscription.language == "en"
    assert (await outbox()).sent == 1
    message = _mail_to(smtp_server, email)
    _assert_english_confirmation(message)
    return confirm_url_in(smtp_server.messages_to(email)[0]).removeprefix(BASE_URL)


async def _confirm_and_unsubscribe_in_english(
    client: httpx.AsyncClient,
    runtime: Runtime,
    news_row: MailingList,
    email: str,
    confirm_path: str,
) -> None:
    """The confirm page, its answer and later the unsubscribe page come in English, though the
    list is Japanese and the requests say nothing of a language."""
    shown = read_page((await client.get(confirm_path)).text)
    assert shown.html_lang == "en"
    assert "Confirm your subscription" in shown.text
    confirmed = await client.post(confirm_path)
    assert confirmed.status_code == 200
    answer = read_page(confirmed.text)
    assert answer.html_lang == "en"
    assert "You are subscribed" in answer.text
    subscriber = await subscriber_by_email(runtime, email)
    assert subscriber is not None
    token = runtime.signer.unsubscribe_token(subscriber.id, news_row.id, subscriber.address_hash)
    page = read_page((await client.get(f"/unsubscribe/{token}")).text)
    assert page.html_lang == "en"
    assert "Stop emails from" in page.text
    done = read_page((await client.post(f"/unsubscribe/{token}", data={"scope": "list"})).text)
    assert done.html_lang == "en"
    assert "You are unsubscribed" in done.text


async def test_cc3_signup_with_lang_en_on_a_japanese_list_is_answered_in_english_from_then_on(
    client: httpx.AsyncClient,
    runtime: Runtime,
    news_row: MailingList,
    smtp_server: SmtpServer,
    outbox: Any,
) -> None:
    """``?lang=en`` on the hosted form of a Japanese list: the English form, the English
    wording recorded exactly as shown (CR-1), the language kept, the mail and pages English."""
    assert news_row.language == "ja"
    form = read_page((await client.get("/subscribe/news?lang=en")).text)
    assert form.input("lang").attrs["value"] == "en"
    assert form.input("consent_text").attrs["value"] == ENGLISH_WORDING
    assert form.label_for("consent") == ENGLISH_WORDING

    answer = await _post_form(client, "/subscribe/news?lang=en", "mary@example.com")
    assert answer.status_code == 202
    assert read_page(answer.text).html_lang == "en"
    [grant] = await events_of(runtime, "mary@example.com")
    assert grant.consent_text_hash == hashlib.sha256(ENGLISH_WORDING.encode()).hexdigest()
    assert grant.source_url == f"{BASE_URL}/subscribe/news?lang=en"

    confirm_path = await _signed_up_in_english(
        runtime, news_row, smtp_server, outbox, "mary@example.com"
    )
    # CR-1: the mail quotes the English wording the person agreed to.
    assert ENGLISH_WORDING in text_part(_mail_to(smtp_server, "mary@example.com")).replace(
        "\r\n", "\n"
    )
    await _confirm_and_unsubscribe_in_english(
        client, runtime, news_row, "mary@example.com", confirm_path
    )


async def test_cc2_the_forms_language_switch_leads_to_the_english_form_and_an_english_signup(
    client: httpx.AsyncClient,
    runtime: Runtime,
    news_row: MailingList,
    smtp_server: SmtpServer,
    outbox: Any,
) -> None:
    japanese = read_page((await client.get("/subscribe/news")).text)
    assert japanese.html_lang == "ja"
    switch = japanese.link("language-switch")
    assert switch == "/subscribe/news?lang=en"
    answer = await _post_form(client, switch, "john@example.com")
    assert answer.status_code == 202
    assert "Check your mailbox" in read_page(answer.text).text
    confirm_path = await _signed_up_in_english(
        runtime, news_row, smtp_server, outbox, "john@example.com"
    )
    await _confirm_and_unsubscribe_in_english(
        client, runtime, news_row, "john@example.com", confirm_path
    )


async def test_cc3_a_browser_that_prefers_english_gets_the_english_form_mail_and_pages(
    client: httpx.AsyncClient,
    runtime: Runtime,
    news_row: MailingList,
    smtp_server: SmtpServer,
    outbox: Any,
) -> None:
    english_browser = {"Accept-Language": "en-US,en;q=0.9,ja;q=0.8"}
    page = await client.get("/subscribe/news", headers=english_browser)
    assert read_page(page.text).html_lang == "en"
    # A site's own form posting JSON, with the visitor's browser header passed on.
    answer = await client.post(
        "/subscribe/news",
        json={"email": "kate@example.com", "consent": True, "consent_text": JSON_WORDING},
        headers=english_browser,
    )
    assert answer.status_code == 202
    assert answer.json()["detail"].startswith("If the address can be subscribed")
    confirm_path = await _signed_up_in_english(
        runtime, news_row, smtp_server, outbox, "kate@example.com"
    )
    await _confirm_and_unsubscribe_in_english(
        client, runtime, news_row, "kate@example.com", confirm_path
    )


async def test_without_any_language_said_the_list_decides_and_nothing_is_stored(
    client: httpx.AsyncClient,
    runtime: Runtime,
    news_row: MailingList,
    smtp_server: SmtpServer,
    outbox: Any,
) -> None:
    answer = await json_signup(client, "news", "taro@example.jp")
    assert answer.status_code == 202
    assert answer.json()["detail"].startswith("登録できるアドレスであれば")
    subscription = await subscription_of(runtime, "taro@example.jp", news_row.id)
    assert subscription is not None
    assert subscription.language is None
    await outbox()
    assert _mail_to(smtp_server, "taro@example.jp")["Subject"].startswith(f"【{SENDER_NAME}】")


async def test_lang_in_the_address_changes_one_page_view_not_the_persons_language(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    """?lang= decides the page it is on, and the answer of that page's button (its form keeps
    it), never the language stored: the next mail and page are in the person's own."""
    assert (await json_signup(client, "news", "mary@example.com", lang="en")).status_code == 202
    subscription = await subscription_of(runtime, "mary@example.com", news_row.id)
    assert subscription is not None
    assert subscription.grant_event_id is not None
    confirm_path = f"/confirm/{runtime.signer.confirm_token(subscription.grant_event_id)}"
    page = read_page((await client.get(f"{confirm_path}?lang=ja")).text)
    assert page.html_lang == "ja"
    [form] = page.forms()
    assert form.attrs["action"] == f"{confirm_path}?lang=ja"
    answer = await client.post(f"{confirm_path}?lang=ja")
    assert read_page(answer.text).html_lang == "ja"
    assert "ご登録が完了しました" in answer.text
    # The person's own language stands.
    assert read_page((await client.get(confirm_path)).text).html_lang == "en"
    subscription = await subscription_of(runtime, "mary@example.com", news_row.id)
    assert subscription is not None
    assert subscription.language == "en"


async def test_a_signup_for_an_active_subscription_cannot_change_its_language(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList, app: Any, settings: Settings
) -> None:
    """Anybody can type an address into a form: the answer never tells whether it is
    subscribed, and such a signup changes nothing, the person's language included. A pending
    one, which nobody has confirmed yet, follows the newest signup (its mail is the one sent)."""
    # More signups of one address than the limit lets through (they would change nothing).
    app.state.signup_limits = SignupLimits.from_settings(
        settings.model_copy(update={"signup_limit_per_address": 100})
    )
    assert (await json_signup(client, "news", "mary@example.com", lang="en")).status_code == 202
    assert (await json_signup(client, "news", "mary@example.com", lang="ja")).status_code == 202
    pending = await subscription_of(runtime, "mary@example.com", news_row.id)
    assert pending is not None
    assert pending.language == "ja"
    assert (await json_signup(client, "news", "mary@example.com", lang="en")).status_code == 202
    pending = await subscription_of(runtime, "mary@example.com", news_row.id)
    assert pending is not None
    assert pending.grant_event_id is not None
    token = runtime.signer.confirm_token(pending.grant_event_id)
    assert (await client.post(f"/confirm/{token}")).status_code == 200

    stranger = await json_signup(client, "news", "mary@example.com", lang="ja")
    assert stranger.status_code == 202
    active = await subscription_of(runtime, "mary@example.com", news_row.id)
    assert active is not None
    assert active.status == SubscriptionStatus.ACTIVE
    assert active.language == "en"


async def test_json_answers_speak_the_pages_language_and_keep_the_error_class_in_english(
    client: httpx.AsyncClient, news_row: MailingList
) -> None:
    """The JSON signup's ``detail`` is in the body's ``lang``, else ``?lang=``, else the
    browser's language, else the list's; ``error`` names the class in English whatever the
    language, for programs."""
    no_consent = {"email": "a@example.jp", "consent_text": JSON_WORDING}
    japanese = await client.post("/subscribe/news", json=no_consent)
    assert japanese.status_code == 422
    assert japanese.json()["error"] == "InvalidInput"
    assert japanese.json()["detail"].startswith("consent: ご本人の同意が必要です")
    for english in (
        await client.post("/subscribe/news", json={**no_consent, "lang": "en"}),
        await client.post("/subscribe/news?lang=en", json=no_consent),
        await client.post("/subscribe/news", json=no_consent, headers={"Accept-Language": "en"}),
    ):
        assert english.status_code == 422
        assert english.json()["error"] == "InvalidInput"
        assert english.json()["detail"].startswith("consent: the person must agree")

    # A field the body's schema refuses, in both languages.
    too_long = {"email": "a@example.jp", "consent": True, "consent_text": "x" * 10_001}
    ja_field = (await client.post("/subscribe/news", json=too_long)).json()
    assert ja_field["detail"] == "consent_text: 10000文字以内で指定してください"
    en_field = (await client.post("/subscribe/news?lang=en", json=too_long)).json()
    assert en_field["detail"] == "consent_text: String should have at most 10000 characters"
    bad_lang = await client.post(
        "/subscribe/news", json={"email": "a@example.jp", "consent": True, "lang": "fr"}
    )
    assert bad_lang.status_code == 422
    assert "lang: 'ja'、'en' のいずれかを指定してください" in bad_lang.json()["detail"]

    not_json = await client.post(
        "/subscribe/news",
        content=b"{",
        headers={"Content-Type": "application/json", "Accept-Language": "en"},
    )
    assert not_json.json() == {"error": "InvalidInput", "detail": "The body is not valid JSON."}
    unsupported = await client.post(
        "/subscribe/news", content=b"x", headers={"Content-Type": "text/plain"}
    )
    assert unsupported.status_code == 415
    assert unsupported.json()["error"] == "UnsupportedMediaType"
    assert unsupported.json()["detail"].startswith("登録は、フォーム")
    unknown = await client.post("/subscribe/nothing?lang=en", json=no_consent)
    assert unknown.json() == {"error": "NotFound", "detail": "There is no such list."}


async def test_json_unregistered_wording_and_too_many_are_answered_in_the_lists_language(
    client: httpx.AsyncClient, weekly: MailingList
) -> None:
    """An English list's JSON answers are English unless asked otherwise."""
    refused = await client.post(
        "/subscribe/weekly",
        json={"email": "a@example.com", "consent": True, "consent_text": "made up"},
    )
    assert refused.status_code == 422
    assert refused.json()["error"] == "UnregisteredWording"
    assert refused.json()["detail"].startswith("consent_text: not a registered wording")
    assert f"/lists/{weekly.id}/consent-texts" in refused.json()["detail"]
    in_japanese = await client.post(
        "/subscribe/weekly?lang=ja",
        json={"email": "a@example.com", "consent": True, "consent_text": "made up"},
    )
    assert in_japanese.json()["detail"].startswith("consent_text: このリストに登録された文言")

    for _ in range(200):
        busy = await client.post(
            "/subscribe/weekly",
            json={"email": "b@example.com", "consent": True, "consent_text": JSON_WORDING},
            headers={"Accept-Language": "ja"},
        )
        if busy.status_code == 429:
            break
    else:
        pytest.fail("no 429 after 200 signups from one client")
    assert busy.json() == {
        "error": "TooManyRequests",
        "detail": "このクライアントからの登録が多すぎます。しばらくしてから再度お試しください。",
    }


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("en", "en"),
        ("en-US,en;q=0.9,ja;q=0.8", "en"),
        ("ja,en-US;q=0.9,en;q=0.8", "ja"),
        ("fr-FR,fr;q=0.9,en;q=0.5,ja;q=0.4", "en"),
        ("fr-FR, de;q=0.7", None),
        ("ja;q=0.5, en;q=0.5", "ja"),  # equal weight: the one named first
        ("en;q=0.5, ja;q=0.5", "en"),
        ("en;q=0, ja;q=0.1", "ja"),
        ("en;q=0", None),
        ("*", None),  # anything: the list decides
        ("en;q=0, *", "ja"),  # anything but English
        ("fr, *;q=0.1", None),
        ("en-GB;q=0.3, *;q=0.5", "ja"),  # the wildcard weighs more than the English named
        ("EN-us", "en"),
        ("en;q=1.5, ja;q=0.2", "ja"),  # a malformed q-value: that entry is ignored
        ("en;q=abc", None),
        ("en; q=0.8 , ja ; q=0.9", "ja"),
        ("x" * 5000, None),
    ],
)
def test_accept_language_is_read_with_its_q_values(header: str | None, expected: str) -> None:
    assert accept_language(header) == expected


# --- every public page offers the other language ----------------------------------------------


def _switch_of(response: httpx.Response) -> tuple[Page, str]:
    page = read_page(response.text)
    assert page.html_lang in ("ja", "en")
    return page, page.link("language-switch")


async def _assert_switches(
    client: httpx.AsyncClient, response: httpx.Response, path: str, status_code: int
) -> Page:
    """The page links to itself in the other language at the same path (its list or token
    kept), and that page links back: both work, with the status the page had."""
    page, switch = _switch_of(response)
    other = "en" if page.html_lang == "ja" else "ja"
    assert switch.startswith(f"{path}?lang={other}")
    switched = await client.get(switch)
    assert switched.status_code == status_code, switch
    there, back = _switch_of(switched)
    assert there.html_lang == other
    assert back.startswith(f"{path}?lang={page.html_lang}")
    assert read_page((await client.get(back)).text).html_lang == page.html_lang
    return there


async def test_cc2_every_public_page_has_a_working_link_to_the_other_language(
    client: httpx.AsyncClient,
    runtime: Runtime,
    news_row: MailingList,
    weekly: MailingList,
) -> None:
    # The form; in the other language its hidden fields are that language's (CR-1).
    english_form = await _assert_switches(
        client, await client.get("/subscribe/news"), "/subscribe/news", 200
    )
    assert english_form.input("lang").attrs["value"] == "en"
    assert english_form.input("consent_text").attrs["value"] == ENGLISH_WORDING
    # The form again with what was wrong (422).
    refused = await client.post(
        "/subscribe/news", data={"email": "not an address", "lang": "ja", "consent": "yes"}
    )
    assert refused.status_code == 422
    await _assert_switches(client, refused, "/subscribe/news", 200)
    # The answers to a signup, double and single opt-in: the same page in the other language.
    pending = await client.post(
        "/subscribe/news", data={"email": "a@example.jp", "lang": "ja", "consent": "yes"}
    )
    assert pending.status_code == 202
    there = await _assert_switches(client, pending, "/subscribe/news", 200)
    assert "Check your mailbox" in there.text
    subscribed = await client.post(
        "/subscribe/weekly", data={"email": "b@example.jp", "lang": "en", "consent": "yes"}
    )
    assert subscribed.status_code == 200
    there = await _assert_switches(client, subscribed, "/subscribe/weekly", 200)
    assert "ご登録ありがとうございます" in there.text
    # An unknown list (404).
    await _assert_switches(
        client, await client.get("/subscribe/nothing"), "/subscribe/nothing", 404
    )

    # The confirm page, its answer, and a link that is over (400, the list known).
    subscription = await subscription_of(runtime, "a@example.jp", news_row.id)
    assert subscription is not None
    assert subscription.grant_event_id is not None
    confirm = f"/confirm/{runtime.signer.confirm_token(subscription.grant_event_id)}"
    await _assert_switches(client, await client.get(confirm), confirm, 200)
    there = await _assert_switches(client, await client.post(confirm), confirm, 200)
    assert "You are subscribed" in there.text
    subscriber = await subscriber_by_email(runtime, "a@example.jp")
    assert subscriber is not None
    unsubscribe = (
        f"/unsubscribe/"
        f"{runtime.signer.unsubscribe_token(subscriber.id, news_row.id, subscriber.address_hash)}"
    )
    await _assert_switches(client, await client.get(unsubscribe), unsubscribe, 200)
    there = await _assert_switches(client, await client.post(unsubscribe), unsubscribe, 200)
    assert "is already stopped for this address" in there.text
    assert (await json_signup(client, "news", "a@example.jp")).status_code == 202
    renewed = await subscription_of(runtime, "a@example.jp", news_row.id)
    assert renewed is not None
    assert renewed.grant_event_id != subscription.grant_event_id
    # The first request's link, after a newer one: over (400), in the person's language.
    over = await client.get(confirm)
    assert over.status_code == 400
    await _assert_switches(client, over, confirm, 400)

    # Tampered links (400), opened and posted.
    for path in ("/confirm/tampered", "/unsubscribe/tampered"):
        await _assert_switches(client, await client.get(path), path, 400)
        await _assert_switches(client, await client.post(path), path, 400)


async def test_the_429_page_offers_the_other_language_keeping_the_list(
    client: httpx.AsyncClient, news_row: MailingList
) -> None:
    for _ in range(200):
        busy = await client.post(
            "/subscribe/news", data={"email": "a@example.jp", "lang": "en", "consent": "yes"}
        )
        if busy.status_code == 429:
            break
    else:
        pytest.fail("no 429 after 200 signups from one client")
    page = read_page(busy.text)
    assert page.html_lang == "en"  # the language of the form that was posted
    assert "Please try again later" in page.text
    there = await _assert_switches(client, busy, "/subscribe/news", 200)
    assert "しばらくしてからお試しください" in there.text
