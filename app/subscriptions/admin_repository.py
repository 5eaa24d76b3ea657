"""Queries of the consent domain used by the admin API only: the ledger export."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ConsentEvent, ConsentText, MailingList


async def events_with_wording(
    session: AsyncSession,
    *,
    list_id: int | None,
    email: str | None,
    after_id: int,
    limit: int,
) -> Sequence[tuple[ConsentEvent, str | None]]:
    """CR-3: ledger events oldest first from ``after_id`` on, each with the exact consent
    wording it references (stored once per version in consent_texts)."""
    stmt = select(ConsentEvent, ConsentText.text).outerjoin(
        ConsentText, ConsentText.hash == ConsentEvent.consent_text_hash
    )
    if list_id is not None:
        # As in repository.latest_events: a sender-wide withdrawal (list_id NULL) concerns
        # every list of that sender, so it belongs in the list's proof too.
        sender_of_list = (
            select(MailingList.sender_id).where(MailingList.id == list_id).scalar_subquery()
        )
        stmt = stmt.where(
            or_(
                ConsentEvent.list_id == list_id,
                and_(ConsentEvent.list_id.is_(None), ConsentEvent.sender_id == sender_of_list),
            )
        )
    if email is not None:
        stmt = stmt.where(ConsentEvent.email == email)
    stmt = stmt.where(ConsentEvent.id > after_id).order_by(ConsentEvent.id).limit(limit)
    return (await session.execute(stmt)).all()
