"""Fixtures for the public pages: a sender, its lists, and helpers to read the mail."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from app.models import MailingList, Sender
from app.runtime import Runtime
from tests.factories import EN_PURPOSE, make_list, make_sender, register_wording
from tests.smtp import Received

# What json_signup reports the customer's own form showed.
JSON_WORDING = "ニュースレターの受け取りに同意します（株式会社承諾商事）"
CONFIRM_URL = re.compile(r"https?://[^\s\"<>]+/confirm/[A-Za-z0-9_.\-]+")


@pytest.fixture
async def sender_row(runtime: Runtime) -> Sender:
    return await make_sender(runtime)


@pytest.fixture
async def news_row(runtime: Runtime, sender_row: Sender) -> MailingList:
    """A Japanese, double opt-in list (the defaults)."""
    return await make_list(runtime, sender_row)


@pytest.fixture
async def weekly(runtime: Runtime, sender_row: Sender) -> MailingList:
    """A second list of the same sender, in English, single opt-in: JSON signups must carry a
    registered wording (the default there), and the one ``json_signup`` sends is registered."""
    weekly = await make_list(
        runtime,
        sender_row,
        name="Weekly Deals",
        slug="weekly",
        purpose=EN_PURPOSE,
        double_opt_in=False,
        language="en",
    )
    await register_wording(runtime, weekly, JSON_WORDING)
    return weekly


def consent_wording_of(page_html: str) -> str:
    from tests.public.html import read_page

    value = read_page(page_html).input("consent_text").attrs["value"]
    assert value
    return value


async def form_signup(
    client: httpx.AsyncClient, slug: str, email: str, **fields: Any
) -> httpx.Response:
    """Post the hosted form the way a browser does, with the wording the form carried."""
    page = await client.get(f"/subscribe/{slug}")
    data = {
        "email": email,
        "consent": "yes",
        "consent_text": consent_wording_of(page.text),
        "lang": "ja",
        "website": "",
    }
    data.update(fields)
    return await client.post(
        f"/subscribe/{slug}", data={k: v for k, v in data.items() if v is not None}
    )


async def json_signup(
    client: httpx.AsyncClient, slug: str, email: str, **fields: Any
) -> httpx.Response:
    body: dict[str, Any] = {
        "email": email,
        "consent": True,
        "consent_text": JSON_WORDING,
    }
    body.update(fields)
    return await client.post(f"/subscribe/{slug}", json=body)


def text_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def html_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def confirm_url_in(received: Received) -> str:
    found = CONFIRM_URL.findall(text_part(received.message))
    assert found, "no confirm URL in the mail"
    assert len(set(found)) == 1
    return str(found[0])
