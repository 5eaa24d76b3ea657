"""What every public page shares: headers, languages, and the signup limiter's bookkeeping."""

from __future__ import annotations

import string

import httpx
import pytest

from app.models import MailingList
from app.public.i18n import MESSAGES, Translator, consent_wording, pick_lang
from app.public.rate_limit import SlidingWindowLimiter
from app.runtime import Runtime
from tests.factories import subscription_of
from tests.public.conftest import json_signup


async def test_oo3_every_public_page_is_uncached_unframed_refererless_and_cookieless(
    client: httpx.AsyncClient, runtime: Runtime, news_row: MailingList
) -> None:
    """Tokens travel in these URLs: no cache, no Referer, no framing, no cookie (OO-3, DS-6)."""
    assert (await json_signup(client, "news", "hanako@example.jp")).status_code == 202
    subscription = await subscription_of(runtime, "hanako@example.jp", news_row.id)
    assert subscription is not None
    assert subscription.grant_event_id is not None
    confirm = f"/confirm/{runtime.signer.confirm_token(subscription.grant_event_id)}"
    unsubscribe = "/unsubscribe/" + runtime.signer.unsubscribe_token(
        subscription.subscriber_id, news_row.id, "0" * 64
    )
    responses = [
        await client.get("/subscribe/news"),
        await client.get("/subscribe/nope"),
        await client.post("/subscribe/news", data={"email": "x"}),
        await json_signup(client, "news", "jiro@example.jp"),
        await json_signup(client, "news", "bad"),
        await client.get(confirm),
        await client.get("/confirm/bad"),
        await client.post(confirm),
        await client.get(unsubscribe),
        await client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}),
        await client.post("/unsubscribe/bad"),
    ]
    for response in responses:
        where = f"{response.request.method} {response.request.url.path} {response.status_code}"
        assert response.status_code < 500, where
        assert response.headers["cache-control"] == "no-store", where
        assert response.headers["referrer-policy"] == "no-referrer", where
        assert response.headers["x-frame-options"] == "DENY", where
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], where
        assert "set-cookie" not in response.headers, where
        assert "location" not in response.headers, where


def test_both_languages_have_every_message_with_the_same_fields() -> None:
    assert MESSAGES["ja"].keys() == MESSAGES["en"].keys()
    for key in MESSAGES["ja"]:
        fields = [
            {name for _text, name, _spec, _conv in string.Formatter().parse(MESSAGES[lang][key])}
            - {None}
            for lang in ("ja", "en")
        ]
        assert fields[0] == fields[1], key


def test_unsubscribe_button_reads_naturally_in_japanese() -> None:
    assert Translator("ja")("unsubscribe.button") == "配信を停止する"
    assert Translator("en")("unsubscribe.button") == "Unsubscribe"


def test_cc2_cc5_consent_wording_names_sender_advertising_and_purpose() -> None:
    ja = consent_wording("ja", sender_name="株式会社A", list_name="便り", purpose=" 目的 \n")
    assert ja.startswith("株式会社Aが配信するメールマガジン「便り」（広告・宣伝を含みます）")
    assert ja.endswith("個人情報の利用目的：目的")
    en = consent_wording("en", sender_name="A Ltd.", list_name="News", purpose="Offers")
    assert "from A Ltd., including advertising" in en
    assert en.endswith("Purpose of use of my personal information: Offers")


@pytest.mark.parametrize(
    ("requested", "default", "expected"),
    [
        ("en", "ja", "en"),
        ("ja", "en", "ja"),
        (None, "en", "en"),
        ("fr", "en", "en"),
        (None, "xx", "ja"),
    ],
)
def test_page_language_choice(requested: str | None, default: str, expected: str) -> None:
    assert pick_lang(requested, default) == expected


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_allows_the_limit_per_window_then_refuses_until_the_window_slides() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(2, 60, clock=clock)
    assert limiter.hit("a")
    clock.now += 10
    assert limiter.hit("a")
    assert not limiter.hit("a")
    assert limiter.hit("b")  # keys are counted apart
    assert limiter.retry_after("a") == 51
    clock.now += 50  # the first hit leaves the window
    assert limiter.hit("a")
    assert not limiter.hit("a")


def test_limiter_of_zero_never_refuses_and_keeps_nothing() -> None:
    limiter = SlidingWindowLimiter(0, 60)
    assert all(limiter.hit("a") for _ in range(100))
    assert len(limiter) == 0


def test_limiter_memory_is_bounded() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, 60, max_keys=100, clock=clock)
    for n in range(1000):
        limiter.hit(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter) == 100  # the keys idle longest went first
    assert limiter.hit("10.0.3.231")  # the newest are still counted...
    clock.now += 61
    limiter.hit("fresh")
    assert len(limiter) == 1  # ...and keys idle for a whole window are dropped


async def test_sender_identity_in_the_footer_and_only_web_urls_become_links(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    from tests.factories import make_list, make_sender
    from tests.public.html import read_page

    sender = await make_sender(runtime, contact_url="javascript:alert(1)", contact_phone=None)
    await make_list(runtime, sender, slug="js")
    response = await client.get("/subscribe/js")
    page = read_page(response.text)
    hrefs = [e.attrs.get("href") for e in page.elements if e.tag == "a"]
    # The sender's contact, beside this page's own switch to English.
    assert hrefs == ["/subscribe/js?lang=en", "mailto:support@shodaku-shoji.example"]
    assert "javascript:alert(1)" in page.text  # shown as inert text
