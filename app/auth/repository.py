"""Queries on API keys and the senders they are bound to (DS-6)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiKey, ApiKeySender, Sender


@dataclass(frozen=True, slots=True)
class ActiveKey:
    id: int
    scope: str
    last_used_at: datetime | None
    sender_ids: list[int]


async def active_by_hash(session: AsyncSession, key_hash: str, now: datetime) -> ActiveKey | None:
    """The key with this hash if it is neither revoked nor expired, with its senders: one
    query of plain columns (no ORM object: this runs on every request), a row per bound
    sender or one row with no sender."""
    rows = (
        await session.execute(
            select(ApiKey.id, ApiKey.scope, ApiKey.last_used_at, ApiKeySender.sender_id)
            .outerjoin(ApiKeySender, ApiKeySender.api_key_id == ApiKey.id)
            .where(
                ApiKey.key_hash == key_hash,
                ApiKey.revoked_at.is_(None),
                or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
            )
        )
    ).all()
    if not rows:
        return None
    key_id, scope, last_used_at, _sender = rows[0]
    senders = [row.sender_id for row in rows if row.sender_id is not None]
    return ActiveKey(key_id, scope, last_used_at, senders)


async def touch(session: AsyncSession, key_id: int, now: datetime, older_than: datetime) -> None:
    """Set last_used_at unless another request did within the resolution meanwhile."""
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < older_than),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )


async def missing_senders(session: AsyncSession, sender_ids: Sequence[int]) -> list[int]:
    if not sender_ids:
        return []
    found = set(await session.scalars(select(Sender.id).where(Sender.id.in_(sender_ids))))
    return [i for i in sender_ids if i not in found]


async def bind_senders(session: AsyncSession, key_id: int, sender_ids: Sequence[int]) -> None:
    if sender_ids:
        await session.execute(
            insert(ApiKeySender), [{"api_key_id": key_id, "sender_id": s} for s in sender_ids]
        )


async def get(session: AsyncSession, key_id: int) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def page(session: AsyncSession, *, after_id: int | None, limit: int) -> Sequence[ApiKey]:
    stmt = select(ApiKey).order_by(ApiKey.id).limit(limit)
    if after_id is not None:
        stmt = stmt.where(ApiKey.id > after_id)
    return (await session.scalars(stmt)).all()


async def senders_of(session: AsyncSession, key_ids: Sequence[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    if not key_ids:
        return found
    rows = await session.execute(
        select(ApiKeySender.api_key_id, ApiKeySender.sender_id)
        .where(ApiKeySender.api_key_id.in_(key_ids))
        .order_by(ApiKeySender.api_key_id, ApiKeySender.sender_id)
    )
    for key_id, sender_id in rows:
        found.setdefault(key_id, []).append(sender_id)
    return found
