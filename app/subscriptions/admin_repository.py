"""Queries of the consent domain used by the admin API only: the ledger export."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.scope import SenderIds, of_senders
from app.models import ConsentEvent, ConsentText
from app.subscriptions.repository import events_concerning_list


async def events_with_wording(
    session: AsyncSession,
    *,
    list_id: int | None,
    email: str | None,
    after_id: int,
    limit: int,
    senders: SenderIds = None,
) -> Sequence[tuple[ConsentEvent, str | None]]:
    """CR-3: ledger events oldest first from ``after_id`` on, each with the exact consent
    wording it references (stored once per version in consent_texts)."""
    stmt = (
        select(ConsentEvent, ConsentText.text)
        .outerjoin(ConsentText, ConsentText.hash == ConsentEvent.consent_text_hash)
        .where(of_senders(ConsentEvent.sender_id, senders))
    )
    if list_id is not None:
        stmt = stmt.where(events_concerning_list(list_id))
    if email is not None:
        stmt = stmt.where(ConsentEvent.email == email)
    stmt = stmt.where(ConsentEvent.id > after_id).order_by(ConsentEvent.id).limit(limit)
    return (await session.execute(stmt)).all()
