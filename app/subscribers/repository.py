"""Queries on subscribers (people)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Subscriber
from app.models.base import utcnow


async def get_by_email(session: AsyncSession, email: str) -> Subscriber | None:
    return (await session.scalars(select(Subscriber).where(Subscriber.email == email))).first()


async def get_or_create(
    session: AsyncSession,
    *,
    email: str,
    address_hash: str,
    name: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> tuple[Subscriber, bool]:
    """Return the subscriber for a normalised address, creating it if needed.

    An INSERT … ON CONFLICT DO NOTHING, so two signups racing for one new address both end on
    the same row instead of one of them failing on the unique constraint.
    """
    existing = await get_by_email(session, email)
    if existing is not None:
        return existing, False
    now = utcnow()
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    result = await session.execute(
        insert(Subscriber)
        .values(
            email=email,
            address_hash=address_hash,
            name=name,
            attributes=attributes or {},
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(Subscriber.id)
    )
    created = result.scalar_one_or_none() is not None
    subscriber = await get_by_email(session, email)
    assert subscriber is not None
    return subscriber, created
