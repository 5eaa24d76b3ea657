"""The public pages in a real browser: headless Chromium against the app served by uvicorn.

The server runs in this test's event loop with its own outbox sender (as ``shodaku serve``
does), polling only once an hour: the confirmation mail arrives because the signup woke it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, Page, Request, async_playwright

from app.config import Settings
from app.main import create_app
from app.models import ConsentEvent, ConsentText, MailingList
from app.models.enums import ConsentEventKind, ConsentMethod, SubscriptionStatus, SuppressionScope
from app.runtime import Runtime
from app.subscriptions.repository import GateVerdict, check_gate
from tests.conftest import wait_for
from tests.factories import (
    SENDER_NAME,
    make_list,
    make_sender,
    subscriber_by_email,
    subscription_of,
)
from tests.public.conftest import confirm_url_in
from tests.public.html import read_page
from tests.queries import events_of
from tests.smtp import SmtpServer, free_port

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
SCREENSHOT = Path("/tmp/shodaku-signup.png")
EMAIL = "hanako@example.jp"


@dataclass
class LiveServer:
    base_url: str
    runtime: Runtime


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium): browser test not run")
    return CHROMIUM


@pytest.fixture
async def live(
    chromium: Path, settings: Settings, smtp_server: SmtpServer
) -> AsyncIterator[LiveServer]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    # The links in the mail must point at this server.
    live_settings = settings.model_copy(
        update={"base_url": base_url, "outbox_poll_seconds": 3600.0}
    )
    app = create_app(live_settings, run_outbox=True, run_sender=False)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, lifespan="on", log_level="warning", access_log=False
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started or serving.done())
        if serving.done():
            serving.result()  # raise why it could not start
        yield LiveServer(base_url, app.state.runtime)
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def browser(chromium: Path, live: LiveServer) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def _submit(page: Page, selector: str = "button[type=submit]") -> None:
    async with page.expect_navigation():
        await page.click(selector)


async def test_cc2_cc3_oo5_signup_confirm_and_unsubscribe_in_a_browser(
    live: LiveServer, browser: Browser, smtp_server: SmtpServer
) -> None:
    runtime = live.runtime
    sender = await make_sender(runtime)
    news = await make_list(runtime, sender)
    await make_list(runtime, sender, slug="other", name="Other")

    page = await browser.new_page(locale="ja-JP", viewport={"width": 900, "height": 1100})
    posts: list[str] = []

    def record(request: Request) -> None:
        if request.method == "POST":
            posts.append(request.url)

    page.on("request", record)

    # The form: the consent box starts unticked (CC-2).
    response = await page.goto(f"{live.base_url}/subscribe/news")
    assert response is not None
    assert response.status == 200
    assert await page.get_attribute("html", "lang") == "ja"
    consent = page.locator("#consent")
    assert not await consent.is_checked()
    assert SENDER_NAME in await page.inner_text("label[for=consent]")
    await page.screenshot(path=str(SCREENSHOT), full_page=True)

    # Without the box ticked the browser does not send the form.
    await page.fill("#email", EMAIL)
    await page.fill("#name", "山田花子")
    await page.click("button[type=submit]")
    assert await consent.evaluate("box => box.validity.valueMissing")
    assert await page.evaluate("document.forms[0].checkValidity()") is False

    # Ticked: the "check your mailbox" page.
    await consent.check()
    await _submit(page)
    assert await page.inner_text("h1") == "確認メールをお送りしました"
    assert posts == [f"{live.base_url}/subscribe/news"]  # the unticked click posted nothing
    assert await subscriber_by_email(runtime, EMAIL) is not None

    # The signup woke the outbox sender; the confirmation mail names this server.
    await wait_for(lambda: bool(smtp_server.messages_to(EMAIL)))
    [mail] = smtp_server.messages_to(EMAIL)
    confirm_url = confirm_url_in(mail)
    assert confirm_url.startswith(f"{live.base_url}/confirm/")

    # Opening the link only shows the button.
    await page.goto(confirm_url)
    assert await page.inner_text("h1") == "ご登録の確認"
    pending = await subscription_of(runtime, EMAIL, news.id)
    assert pending is not None
    assert pending.status == SubscriptionStatus.PENDING
    await _submit(page, "button")
    assert await page.inner_text("h1") == "ご登録が完了しました"
    active = await subscription_of(runtime, EMAIL, news.id)
    assert active is not None
    assert active.status == SubscriptionStatus.ACTIVE
    async with runtime.sessionmaker() as session:
        assert (await check_gate(session, active.subscriber_id, news.id)).mailable
    confirm_event = (await events_of(runtime, EMAIL))[-1]
    assert confirm_event.kind == ConsentEventKind.CONFIRM
    assert confirm_event.ip == "127.0.0.1"
    assert "Chrome" in (confirm_event.user_agent or "")

    # The unsubscribe link from a newsletter: every list of the sender is preselected (OO-5).
    subscriber = await subscriber_by_email(runtime, EMAIL)
    assert subscriber is not None
    token = runtime.signer.unsubscribe_token(subscriber.id, news.id, subscriber.address_hash)
    await page.goto(f"{live.base_url}/unsubscribe/{token}")
    assert await page.inner_text("h1") == "配信停止"
    assert await page.locator("#scope-sender").is_checked()
    assert not await page.locator("#scope-list").is_checked()
    assert EMAIL not in await page.content()
    await _submit(page)
    assert await page.inner_text("h1") == "配信を停止しました"
    assert "完了をお知らせするメールは、お送りしません" in await page.inner_text("main")  # OO-7

    gone = await subscription_of(runtime, EMAIL, news.id)
    assert gone is not None
    assert gone.status == SubscriptionStatus.UNSUBSCRIBED
    withdrawal: ConsentEvent = (await events_of(runtime, EMAIL))[-1]
    assert withdrawal.kind == ConsentEventKind.WITHDRAW
    assert withdrawal.method == ConsentMethod.UNSUBSCRIBE_PAGE
    assert withdrawal.scope == SuppressionScope.SENDER
    async with runtime.sessionmaker() as session:
        gate = await check_gate(session, subscriber.id, news.id)
    assert gate.verdict == GateVerdict.SUPPRESSED
    assert await page.context.cookies() == []


async def test_cc2_english_form_and_a_bad_link_in_a_browser(
    live: LiveServer, browser: Browser
) -> None:
    runtime = live.runtime
    sender = await make_sender(runtime)
    mailing_list: MailingList = await make_list(runtime, sender)
    page = await browser.new_page(locale="en-US")
    await page.goto(f"{live.base_url}/subscribe/{mailing_list.slug}?lang=en")
    assert await page.get_attribute("html", "lang") == "en"
    assert not await page.locator("#consent").is_checked()
    label = await page.inner_text("label[for=consent]")
    assert "including advertising" in label
    # A full-width address typed with an IME passes the browser and is normalised by the server.
    await page.fill("#email", "ｍａｒｙ＠ｅｘａｍｐｌｅ．ｃｏｍ")
    await page.locator("#consent").check()
    await _submit(page)
    assert await page.inner_text("h1") == "Check your mailbox"
    assert await subscriber_by_email(runtime, "mary@example.com") is not None

    # A link nobody can read: in the browser's language, with the other one a click away.
    response = await page.goto(f"{live.base_url}/unsubscribe/not-a-real-token")
    assert response is not None
    assert response.status == 400
    text: Any = read_page(await page.content()).text
    assert "This link is not valid" in text
    async with page.expect_navigation():
        await page.click("#language-switch")
    assert page.url == f"{live.base_url}/unsubscribe/not-a-real-token?lang=ja"
    assert await page.get_attribute("html", "lang") == "ja"
    assert "このリンクは無効か" in await page.inner_text("main")


async def test_cc3_cr1_double_signup_then_the_first_mails_link_confirms_in_a_browser(
    live: LiveServer, browser: Browser, smtp_server: SmtpServer
) -> None:
    """Issue #10.3 as it was seen: a person signs up twice (the first mail was slow), opens the
    link of the first mail, sees the button with the wording they agreed to, presses it, and is
    subscribed; the confirm event names the first request (CC-3, CR-1)."""
    runtime = live.runtime
    sender = await make_sender(runtime)
    news = await make_list(runtime, sender)
    page = await browser.new_page(locale="ja-JP")
    for sent in (1, 2):
        await page.goto(f"{live.base_url}/subscribe/news")
        await page.fill("#email", EMAIL)
        await page.locator("#consent").check()
        await _submit(page)
        assert await page.inner_text("h1") == "確認メールをお送りしました"
        await wait_for(lambda sent=sent: len(smtp_server.messages_to(EMAIL)) == sent)
    first_mail, _second_mail = smtp_server.messages_to(EMAIL)
    first_grant, second_grant = await events_of(runtime, EMAIL)

    await page.goto(confirm_url_in(first_mail))
    assert await page.inner_text("h1") == "ご登録の確認"
    wording = await page.inner_text("#consent-wording")
    assert SENDER_NAME in wording
    assert "広告・宣伝を含みます" in wording
    await _submit(page, "button")
    assert await page.inner_text("h1") == "ご登録が完了しました"

    active = await subscription_of(runtime, EMAIL, news.id)
    assert active is not None
    assert active.status == SubscriptionStatus.ACTIVE
    confirm_event = (await events_of(runtime, EMAIL))[-1]
    assert confirm_event.kind == ConsentEventKind.CONFIRM
    assert confirm_event.evidence["grant_event_id"] == first_grant.id
    assert confirm_event.consent_text_hash == first_grant.consent_text_hash
    assert second_grant.kind == ConsentEventKind.GRANT


async def test_cc2_cc3_switching_the_form_to_english_signs_up_in_english_in_a_browser(
    live: LiveServer, browser: Browser, smtp_server: SmtpServer
) -> None:
    """Issue #11: a person opens a Japanese list's form in Japanese, switches it to English,
    signs up, and from then on reads English: the answer, the confirmation mail, the confirm
    page and its answer (CC-2: the English wording beside the box is what the ledger records,
    CR-1)."""
    runtime = live.runtime
    sender = await make_sender(runtime)
    news = await make_list(runtime, sender)
    page = await browser.new_page(locale="ja-JP")
    await page.goto(f"{live.base_url}/subscribe/news")
    assert await page.get_attribute("html", "lang") == "ja"
    assert await page.inner_text("#language-switch") == "English"

    async with page.expect_navigation():
        await page.click("#language-switch")
    assert page.url == f"{live.base_url}/subscribe/news?lang=en"
    assert await page.get_attribute("html", "lang") == "en"
    assert await page.inner_text("h1") == "Subscribe to “承諾ニュース”"
    wording = await page.inner_text("label[for=consent]")
    assert "I agree to receive the newsletter" in wording
    await page.fill("#email", "mary@example.com")
    await page.locator("#consent").check()
    await _submit(page)
    assert await page.inner_text("h1") == "Check your mailbox"
    assert await page.inner_text("#language-switch") == "日本語"

    subscription = await subscription_of(runtime, "mary@example.com", news.id)
    assert subscription is not None
    assert subscription.language == "en"
    [grant] = await events_of(runtime, "mary@example.com")
    async with runtime.sessionmaker() as session:
        recorded = await session.get(ConsentText, grant.consent_text_hash)
    assert recorded is not None
    assert " ".join(recorded.text.split()) == " ".join(wording.split())

    await wait_for(lambda: bool(smtp_server.messages_to("mary@example.com")))
    [mail] = smtp_server.messages_to("mary@example.com")
    assert mail.message["Subject"].startswith("Please confirm your subscription")
    await page.goto(confirm_url_in(mail))
    assert await page.inner_text("h1") == "Confirm your subscription"
    await _submit(page, "main button")
    assert await page.inner_text("h1") == "You are subscribed"
