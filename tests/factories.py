"""Test data, made the way users make it: through the admin API (``create_sender``,
``record_consent``), through the services a public door calls (``signup``), or as rows of a
sending world (``make_world``). Shared by every folder of the suite; the values a composer takes
are in ``tests/mail/factories.py``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from app.models import (
    AuditLog,
    ConsentEvent,
    MailingList,
    OutboxMessage,
    RegisteredWording,
    Sender,
    Subscriber,
    Subscription,
    Template,
)
from app.models.enums import ConsentMethod, LegalBasis
from app.runtime import Runtime
from app.subscriptions import service as subscriptions_service
from app.subscriptions.repository import GateVerdict, check_gate
from app.subscriptions.service import RequestOrigin, subscribe
from app.wordings.repository import store_consent_text
from tests.queries import count

# --- through the admin API ---------------------------------------------------------------

SENDER = {
    "name": "株式会社承諾テスト",
    "postal_address": "〒100-0001 東京都千代田区千代田1-1",
    "contact_email": "support@shodaku.example",
    "from_email": "news@shodaku.example",
    "from_name": "承諾ニュース",
}

CONSENT_WORDING = "株式会社承諾テストからのお知らせメール(広告を含みます)の受信に同意します。"

# The evidence each legal basis needs (CC-4, CR-1), complete.
FULL_EVIDENCE: dict[str, dict[str, Any]] = {
    "opt_in": {"source": "展示会ブースの申込用紙"},
    "written_notice": {
        "received_on": "2026-06-01",
        "received_by": "佐藤花子",
        "document_ref": "名刺 BC-0042",
    },
    "business_relationship": {
        "transaction_ref": "ORDER-2026-0001",
        "transaction_date": "2026-05-20",
    },
    "published_address": {
        "url": "https://corp.example.jp/contact",
        "seen_at": "2026-06-02T10:00:00+09:00",
        "no_refusal_notice": True,
    },
}
METHOD_FOR = {
    "opt_in": "paper_form",
    "written_notice": "business_card",
    "business_relationship": "api",
    "published_address": "admin",
}


def consent_body(email: str, basis: str = "opt_in", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": email,
        "basis": basis,
        "method": METHOD_FOR[basis],
        "obtained_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
        "evidence": dict(FULL_EVIDENCE[basis]),
    }
    if basis == "opt_in":
        body["consent_text"] = CONSENT_WORDING
    body.update(overrides)
    return body


async def create_sender(admin: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await admin.post("/senders", json={**SENDER, **overrides})
    assert response.status_code == 201, response.text
    sender: dict[str, Any] = response.json()
    return sender


async def create_list(
    admin: httpx.AsyncClient, sender_id: int, slug: str = "news", **overrides: Any
) -> dict[str, Any]:
    body = {
        "name": "承諾ニュース",
        "slug": slug,
        "sender_id": sender_id,
        "purpose": "新製品とセミナーのご案内をお送りするため",
        **overrides,
    }
    response = await admin.post("/lists", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def record_consent(
    admin: httpx.AsyncClient, list_id: int, email: str, basis: str = "opt_in", **overrides: Any
) -> dict[str, Any]:
    response = await admin.post(
        f"/lists/{list_id}/consents", json=consent_body(email, basis, **overrides)
    )
    assert response.status_code == 201, response.text
    recorded: dict[str, Any] = response.json()
    return recorded


async def signup(runtime: Runtime, list_id: int, email: str) -> None:
    """A signup through a form, as the public page makes it (pending on a double opt-in list)."""
    async with runtime.sessionmaker() as session, session.begin():
        mailing_list = await session.get(MailingList, list_id)
        assert mailing_list is not None
        await subscribe(
            session,
            await runtime.hasher(),
            mailing_list=mailing_list,
            email=email,
            name=None,
            consent_text=CONSENT_WORDING,
            method=ConsentMethod.WEB_FORM,
            origin=RequestOrigin(ip="203.0.113.9"),
        )


async def count_events(runtime: Runtime) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(ConsentEvent)) or 0)


async def audit_entries(runtime: Runtime) -> list[AuditLog]:
    async with runtime.sessionmaker() as session:
        return list((await session.scalars(select(AuditLog).order_by(AuditLog.id))).all())


async def gate(runtime: Runtime, subscriber_id: int, list_id: int) -> GateVerdict:
    """What the send gate says now for this subscriber and list (SG-1)."""
    async with runtime.sessionmaker() as session:
        return (await check_gate(session, subscriber_id, list_id)).verdict


# --- rows for the public pages ---------------------------------------------------------------

SENDER_NAME = "株式会社承諾商事"
POSTAL_ADDRESS = "〒100-0001 東京都千代田区千代田1-1"
PURPOSE = "新商品とセールのご案内をお送りするため"
EN_PURPOSE = "To tell you about new products and sales"


async def make_sender(runtime: Runtime, **overrides: Any) -> Sender:
    values: dict[str, Any] = {
        "name": SENDER_NAME,
        "postal_address": POSTAL_ADDRESS,
        "contact_email": "support@shodaku-shoji.example",
        "contact_phone": "03-1234-5678",
        "from_email": "news@shodaku-shoji.example",
        "from_name": "承諾商事ニュース",
    }
    values.update(overrides)
    async with runtime.sessionmaker() as session, session.begin():
        sender = Sender(**values)
        session.add(sender)
    return sender


async def make_list(runtime: Runtime, sender: Sender, **overrides: Any) -> MailingList:
    values: dict[str, Any] = {
        "sender_id": sender.id,
        "name": "承諾ニュース",
        "slug": "news",
        "purpose": PURPOSE,
        "double_opt_in": True,
        "language": "ja",
    }
    values.update(overrides)
    async with runtime.sessionmaker() as session, session.begin():
        mailing_list = MailingList(**values)
        session.add(mailing_list)
    return mailing_list


async def register_wording(runtime: Runtime, mailing_list: MailingList, text: str) -> None:
    """Register a wording for the list, as ``POST /lists/{id}/consent-texts`` does (CR-1)."""
    async with runtime.sessionmaker() as session, session.begin():
        text_hash = await store_consent_text(session, text)
        session.add(
            RegisteredWording(list_id=mailing_list.id, version=1, consent_text_hash=text_hash)
        )


async def subscriber_by_email(runtime: Runtime, email: str) -> Subscriber | None:
    async with runtime.sessionmaker() as session:
        return (await session.scalars(select(Subscriber).where(Subscriber.email == email))).first()


async def subscription_of(runtime: Runtime, email: str, list_id: int) -> Subscription | None:
    async with runtime.sessionmaker() as session:
        return (
            await session.scalars(
                select(Subscription)
                .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
                .where(Subscriber.email == email, Subscription.list_id == list_id)
            )
        ).first()


async def outbox_rows(runtime: Runtime) -> int:
    return await count(runtime, OutboxMessage)


# --- a sending world --------------------------------------------------------------------------

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
        recorded = await subscriptions_service.record_consent(
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
