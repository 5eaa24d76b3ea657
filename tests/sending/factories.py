"""Test data for sending: a sender, a list, a template, subscribers with recorded consent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.models import MailingList, Sender, Template
from app.models.enums import ConsentMethod, LegalBasis
from app.runtime import Runtime
from app.subscriptions.service import RequestOrigin, record_consent

TEMPLATE_HTML = (
    "<html><body><h1>{{ list.name }}</h1><p>こんにちは、{{ name or 'お客様' }}さん。</p>"
    "<p>今月のお知らせです。</p></body></html>"
)


@dataclass
class World:
    sender_id: int
    list_id: int
    template_id: int


async def make_world(
    runtime: Runtime,
    *,
    slug: str = "news",
    language: str = "ja",
    subject: str = "【お知らせ】{{ list.name }} 12月号",
    sender: dict[str, Any] | None = None,
    charset: str = "utf-8",
    html: str = TEMPLATE_HTML,
    text: str | None = None,
) -> World:
    async with runtime.sessionmaker() as session, session.begin():
        row = Sender(
            **(
                sender
                or {
                    "name": "株式会社承諾",
                    "postal_address": "〒100-0001 東京都千代田区千代田1-1",
                    "contact_email": "support@shodaku.example",
                    "from_email": "news@shodaku.example",
                    "from_name": "承諾ニュース",
                }
            )
        )
        session.add(row)
        await session.flush()
        mailing_list = MailingList(
            sender_id=row.id,
            name="承諾ニュース",
            slug=slug,
            purpose="新製品とイベントのお知らせ",
            double_opt_in=True,
            language=language,
            charset=charset,
        )
        template = Template(name="monthly", subject=subject, html=html, text=text)
        session.add_all([mailing_list, template])
        await session.flush()
        return World(sender_id=row.id, list_id=mailing_list.id, template_id=template.id)


async def consent(runtime: Runtime, list_id: int, email: str) -> int:
    """Record a business-card consent (CC-4 written_notice); return the subscriber id."""
    hasher = await runtime.hasher()
    async with runtime.sessionmaker() as session, session.begin():
        recorded = await record_consent(
            session,
            hasher,
            list_id=list_id,
            email=email,
            basis=LegalBasis.WRITTEN_NOTICE,
            method=ConsentMethod.BUSINESS_CARD,
            obtained_at=datetime(2026, 10, 1, tzinfo=UTC),
            evidence={
                "received_on": "2026-10-01",
                "received_by": "営業部 田中",
                "document_ref": "card-0001",
            },
            consent_text=None,
            origin=RequestOrigin(),
            recorded_by="test",
        )
        return recorded.subscription.subscriber_id


async def consent_many(runtime: Runtime, list_id: int, n: int, prefix: str = "user") -> list[str]:
    emails = [f"{prefix}{i:05d}@example.jp" for i in range(n)]
    for email in emails:
        await consent(runtime, list_id, email)
    return emails


async def start(admin: Any, world: Any, **extra: Any) -> dict[str, Any]:
    """Create a campaign on the world's list and send it; the send answer's body."""
    created = await admin.post(
        "/campaigns",
        json={
            "name": "12月号",
            "list_id": world.list_id,
            "template_id": world.template_id,
            **extra,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "draft"
    sent = await admin.post(f"/campaigns/{created.json()['id']}/send")
    assert sent.status_code == 202, sent.text
    body: dict[str, Any] = sent.json()
    return body
