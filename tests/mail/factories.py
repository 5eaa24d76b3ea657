"""Campaign-message test data: a sender, a list, a composer, recipients, and the parser."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any

from app.config import Settings
from app.mail.compose import CampaignComposer, Recipient
from app.mail.identity import ListIdentity, SenderIdentity

BASE_URL = "https://news.example.test"
REFUSAL = {
    "ja": "今後このようなメールの受信を希望されない場合は、以下のURLから配信を停止できます。",
    "en": "You may refuse further emails from us at any time by unsubscribing at this URL:",
}
HTML = (
    "<!doctype html><html><head><title>ニュース</title></head><body>"
    "<h1>{{ name }}様</h1><p>今月のおすすめをお届けします。</p></body></html>"
)


def settings(**overrides: Any) -> Settings:
    return Settings(env="dev", base_url=BASE_URL, **overrides)


def sender_identity(**overrides: Any) -> SenderIdentity:
    values: dict[str, Any] = {
        "name": "株式会社承諾",
        "postal_address": "〒100-0001\n東京都千代田区千代田1-1",
        "contact_email": "support@shodaku.example",
        "contact_phone": "03-1234-5678",
        "contact_url": "https://shodaku.example/contact",
        "from_email": "news@shodaku.example",
        "from_name": "承諾ニュース",
        "reply_to": None,
        "responsible_person": "山田花子",
    }
    values.update(overrides)
    return SenderIdentity(**values)


def list_identity(language: str = "ja", **overrides: Any) -> ListIdentity:
    values: dict[str, Any] = {
        "id": 7,
        "name": "承諾ニュース",
        "slug": "shodaku-news",
        "language": language,
    }
    values.update(overrides)
    return ListIdentity(**values)


def composer(
    *,
    subject: str = "{{ name }}様へ 今月のお知らせ",
    html: str = HTML,
    text: str | None = None,
    sender: SenderIdentity | None = None,
    mailing_list: ListIdentity | None = None,
    **settings_overrides: Any,
) -> CampaignComposer:
    return CampaignComposer.build(
        subject=subject,
        html=html,
        text=text,
        sender=sender or sender_identity(),
        mailing_list=mailing_list or list_identity(),
        settings=settings(**settings_overrides),
    )


def recipient(n: int = 1, **overrides: Any) -> Recipient:
    values: dict[str, Any] = {
        "subscriber_id": n,
        "email": f"reader{n}@example.jp",
        "name": "佐藤一郎",
        "attributes": {"plan": "gold"},
        "unsubscribe_url": f"{BASE_URL}/unsubscribe/token-{n}.abcDEF_123",
    }
    values.update(overrides)
    return Recipient(**values)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML a reader sees, line breaks as newlines (the wire has CRLF: MH-4)."""
    text_part, html_part = list(message.iter_parts())
    return (
        str(text_part.get_content()).replace("\r\n", "\n"),
        str(html_part.get_content()).replace("\r\n", "\n"),
    )


def raw_text(message: EmailMessage) -> str:
    """The text part exactly as decoded from the wire, CRLF line breaks included."""
    text_part = next(iter(message.iter_parts()))
    payload = text_part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode("utf-8")
