"""The mails' HTML on a phone: Chromium at 390 px wide shows them without horizontal scrolling,
in Japanese and English, with a confirm link that says what it does."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from app.mail.system_mail import SystemMail
from tests.mail.factories import BASE_URL, composer, list_identity, recipient, sender_identity

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
PHONE = {"width": 390, "height": 844}
# A long token, as real confirm links carry.
CONFIRM_URL = "https://news.example.test/confirm/" + "eyJzIjoxMjM0NTY3ODkwfQ.Zx9" * 4


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium): browser test not run")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


def html_of(data: bytes) -> str:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


@pytest.mark.parametrize("language", ["ja", "en"])
async def test_confirmation_mail_fits_a_phone_without_sideways_scrolling(
    browser: Browser, language: str
) -> None:
    data = SystemMail().confirmation(
        to="hanako@example.jp",
        mailing_list=list_identity(language),
        sender=sender_identity(),
        confirm_url=CONFIRM_URL,
        expires_days=7,
    )
    page = await browser.new_page(viewport=PHONE)
    await page.set_content(html_of(data))
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{width} px wide at a {PHONE['width']} px viewport"
    button = page.get_by_role(
        "link", name="登録を確認する" if language == "ja" else "Confirm my subscription", exact=True
    )
    box = await button.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"]
    assert await button.get_attribute("href") == CONFIRM_URL
    await page.close()


@pytest.mark.parametrize("language", ["ja", "en"])
async def test_campaign_footer_fits_a_phone_without_sideways_scrolling(
    browser: Browser, language: str
) -> None:
    """MH-1 on a phone: the footer's identity block and its long unsubscribe URL wrap inside a
    390 px screen, and the link also says in words what it does."""
    url = f"{BASE_URL}/unsubscribe/" + "eyJzIjoxMjM0NTY3ODkwfQ.Zx9" * 4
    built = composer(mailing_list=list_identity(language))
    page = await browser.new_page(viewport=PHONE)
    await page.set_content(html_of(built.compose(recipient(unsubscribe_url=url))))
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{width} px wide at a {PHONE['width']} px viewport"
    words = page.get_by_role(
        "link", name="配信を停止する" if language == "ja" else "Unsubscribe", exact=True
    )
    assert await words.get_attribute("href") == url
    for link in await page.get_by_role("link").all():
        box = await link.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= PHONE["width"] + 0.5
    await page.close()


@pytest.mark.parametrize("kind", ["campaign", "confirmation"])
async def test_an_iso_2022_jp_html_part_reads_right_in_a_browser_by_its_own_meta(
    browser: Browser, kind: str
) -> None:
    """A mail program that hands the HTML part's bytes to a browser engine without the MIME
    charset: the document's own meta says ISO-2022-JP, so Chromium reads the Japanese, the
    footer's refusal sentence (MH-1) or the confirm button, rather than escape-sequence noise."""
    carrier = list_identity("ja", charset="iso-2022-jp")
    if kind == "campaign":
        data = composer(mailing_list=carrier).compose(recipient())
        expected = ["佐藤一郎様", "今後このようなメールの受信を希望されない場合は"]
    else:
        data = SystemMail().confirmation(
            to="hanako@example.jp",
            mailing_list=carrier,
            sender=sender_identity(),
            confirm_url=CONFIRM_URL,
            expires_days=7,
        )
        expected = ["ご登録をお申し込みいただきました", "登録を確認する"]
    message = email.message_from_bytes(data, policy=email.policy.default)
    part = message.get_body(("html",))
    assert part is not None
    assert part.get_content_charset() == "iso-2022-jp"
    raw = part.get_payload(decode=True)
    assert isinstance(raw, bytes)
    assert raw.isascii()  # ISO-2022-JP: the Japanese is in escape sequences

    page = await browser.new_page(viewport=PHONE)
    address = "https://mail.example.test/part.html"
    await page.route(
        address,
        lambda route: route.fulfill(status=200, body=raw, headers={"Content-Type": "text/html"}),
    )
    await page.goto(address)
    assert await page.evaluate("document.characterSet") == "ISO-2022-JP"
    shown = await page.inner_text("body")
    for words in expected:
        assert words in shown
    assert "$B" not in shown
    await page.close()
