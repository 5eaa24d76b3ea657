"""Helpers for the admin API tests: a read-only client, senders and lists, row counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.models import AuditLog, ConsentEvent, MailingList
from app.models.enums import ConsentMethod
from app.runtime import Runtime
from app.subscriptions.repository import GateVerdict, check_gate
from app.subscriptions.service import RequestOrigin, subscribe

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


@pytest.fixture
async def sender(admin: httpx.AsyncClient) -> dict[str, Any]:
    return await create_sender(admin)


@pytest.fixture
async def news(admin: httpx.AsyncClient, sender: dict[str, Any]) -> dict[str, Any]:
    """A list of the sender, double opt-in (the default)."""
    return await create_list(admin, sender["id"])


async def gate(runtime: Runtime, subscriber_id: int, list_id: int) -> GateVerdict:
    """What the send gate says now for this subscriber and list (SG-1)."""
    async with runtime.sessionmaker() as session:
        return (await check_gate(session, subscriber_id, list_id)).verdict
