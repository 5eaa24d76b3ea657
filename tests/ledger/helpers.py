"""Building ledgers for the proof tests: consent and opt-outs recorded the way the application
records them, and edits made behind its back with raw SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text

from app.ledger.service import LedgerVerdict, verify_ledger
from app.models import Sender
from app.models.enums import ConsentMethod, LegalBasis, SuppressionReason
from app.runtime import Runtime
from app.subscriptions.service import RequestOrigin, record_consent, record_optout

CARD_EVIDENCE = {
    "received_on": "2026-10-01",
    "received_by": "営業部 田中",
    "document_ref": "名刺 BC-0042",
}


async def grant(
    runtime: Runtime,
    list_id: int,
    email: str,
    *,
    evidence: dict[str, Any] | None = None,
    user_agent: str | None = None,
) -> int:
    """A business-card consent (CC-4) recorded by an operator; returns the event id."""
    hasher = await runtime.hasher()
    async with runtime.sessionmaker() as session, session.begin():
        recorded = await record_consent(
            session,
            hasher,
            list_id=list_id,
            email=email,
            basis=LegalBasis.WRITTEN_NOTICE,
            method=ConsentMethod.BUSINESS_CARD,
            obtained_at=datetime(2026, 10, 1, 9, 30, tzinfo=UTC),
            evidence=evidence if evidence is not None else dict(CARD_EVIDENCE),
            consent_text=None,
            origin=RequestOrigin(ip="198.51.100.20", user_agent=user_agent),
            recorded_by="api_key:1",
        )
        return recorded.event.id


async def withdraw(
    runtime: Runtime, sender_id: int, email: str, list_id: int | None = None
) -> list[int]:
    """An opt-out taken by phone (OO-1); returns the withdrawal event ids."""
    hasher = await runtime.hasher()
    async with runtime.sessionmaker() as session, session.begin():
        outcome = await record_optout(
            session,
            hasher,
            email=email,
            sender_id=sender_id,
            list_id=list_id,
            method=ConsentMethod.PHONE,
            reason=SuppressionReason.OPTOUT_REQUEST,
            recorded_by="api_key:1",
            channel="phone",
            note="電話で配信停止の依頼",
        )
        return outcome.event_ids


async def ledger_head(runtime: Runtime, sender_id: int) -> str | None:
    async with runtime.sessionmaker() as session:
        return await session.scalar(select(Sender.ledger_head).where(Sender.id == sender_id))


async def behind_the_back(runtime: Runtime, *statements: str, **params: Any) -> None:
    """Raw SQL on the database, as someone with database access but not the application."""
    async with runtime.engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement), params)


async def verify(runtime: Runtime) -> LedgerVerdict:
    return await verify_ledger(runtime.sessionmaker)
