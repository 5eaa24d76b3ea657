"""Helpers for the import tests: an acquisition record, rows with and without consent, the
same sheet as CSV in each encoding a Japanese spreadsheet writes, and what the database holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from app.models import (
    AuditLog,
    ConsentEvent,
    ImportItem,
    ListImport,
    OutboxMessage,
    Subscriber,
    Subscription,
)
from app.runtime import Runtime
from tests.queries import count

ACQUISITION: dict[str, Any] = {
    "provider_name": "株式会社名簿サービス",
    "provider_address": "〒150-0001 東京都渋谷区神宮前1-2-3",
    "provider_representative": "代表取締役 鈴木一郎",
    "acquisition_circumstances": "提供元が自社の展示会で名刺交換により取得した名簿",
    "received_at": "2026-11-01T10:00:00+09:00",
    "items": ["メールアドレス", "氏名"],
}


def transaction_consent(sender_id: int | None, **overrides: Any) -> dict[str, Any]:
    """Consent on the business-relationship basis (CC-4), complete, naming ``sender_id``."""
    consent: dict[str, Any] = {
        "basis": "business_relationship",
        "method": "api",
        "obtained_at": (datetime.now(UTC) - timedelta(days=30)).isoformat(),
        "evidence": {"transaction_ref": "ORDER-2026-0042", "transaction_date": "2026-10-01"},
    }
    if sender_id is not None:
        consent["sender_id"] = sender_id
    consent.update(overrides)
    return consent


def json_body(list_id: int, rows: list[Any], **acquisition: Any) -> dict[str, Any]:
    return {"acquisition": {**ACQUISITION, **acquisition}, "list_id": list_id, "rows": rows}


def form_fields(list_id: int, **overrides: str) -> dict[str, str]:
    fields = {k: v for k, v in ACQUISITION.items() if k != "items"}
    fields["items"] = ",".join(ACQUISITION["items"])
    fields["list_id"] = str(list_id)
    fields.update(overrides)
    return fields


async def post_csv(
    admin: httpx.AsyncClient,
    list_id: int,
    content: bytes,
    **overrides: str,
) -> httpx.Response:
    return await admin.post(
        "/imports",
        data=form_fields(list_id, **overrides),
        files={"file": ("provider-list.csv", content, "text/csv")},
    )


async def import_json(admin: httpx.AsyncClient, list_id: int, rows: list[Any]) -> dict[str, Any]:
    response = await admin.post("/imports", json=json_body(list_id, rows))
    assert response.status_code == 201, response.text
    report: dict[str, Any] = response.json()
    return report


async def counts(runtime: Runtime) -> dict[str, int]:
    """How many rows each table an import writes to holds."""
    return {
        model.__tablename__: await count(runtime, model)
        for model in (ListImport, ImportItem, Subscriber, Subscription, ConsentEvent, OutboxMessage)
    }


async def subscriber(runtime: Runtime, email: str) -> Subscriber | None:
    async with runtime.sessionmaker() as session:
        return (await session.scalars(select(Subscriber).where(Subscriber.email == email))).first()


async def items_of(runtime: Runtime, import_id: int) -> dict[str, ImportItem]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(select(ImportItem).where(ImportItem.import_id == import_id))
        return {item.email: item for item in rows}


async def audit_of(runtime: Runtime, action: str) -> list[AuditLog]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)
        )
        return list(rows)
