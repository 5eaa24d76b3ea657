"""Reading the database behind the application's back, as the tests' assertions do."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.models import ConsentEvent
from app.runtime import Runtime


async def count(runtime: Runtime, model: Any) -> int:
    """How many rows the model's table holds."""
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def events_of(runtime: Runtime, email: str) -> list[ConsentEvent]:
    """The ledger's events about one address, oldest first."""
    async with runtime.sessionmaker() as session:
        result = await session.scalars(
            select(ConsentEvent).where(ConsentEvent.email == email).order_by(ConsentEvent.id)
        )
        return list(result.all())


async def events_of_sender(runtime: Runtime, sender_id: int) -> list[ConsentEvent]:
    """One sender's ledger, oldest first."""
    async with runtime.sessionmaker() as session:
        result = await session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.sender_id == sender_id)
            .order_by(ConsentEvent.id)
        )
        return list(result.all())
