"""Queries on senders."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.scope import SenderIds, of_senders
from app.models import Sender


async def get(session: AsyncSession, sender_id: int) -> Sender | None:
    return await session.get(Sender, sender_id)


async def page(
    session: AsyncSession, *, senders: SenderIds, after_id: int | None, limit: int
) -> Sequence[Sender]:
    """Senders by id, keyset-paginated; ``limit`` rows at most; the key's senders only."""
    stmt = select(Sender).where(of_senders(Sender.id, senders)).order_by(Sender.id).limit(limit)
    if after_id is not None:
        stmt = stmt.where(Sender.id > after_id)
    return (await session.scalars(stmt)).all()


async def all_ids(session: AsyncSession) -> list[int]:
    return list((await session.scalars(select(Sender.id).order_by(Sender.id))).all())
