"""Queries of the proof domain: walking a sender's ledger for verification, in keyset batches,
so callers hold one batch at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    ConsentEvent,
    LedgerTombstone,
    Sender,
)


async def sender_ids(session: AsyncSession) -> list[int]:
    return list((await session.scalars(select(Sender.id).order_by(Sender.id))).all())


async def events_after(
    session: AsyncSession, sender_id: int, after_id: int, limit: int
) -> Sequence[ConsentEvent]:
    """A sender's events in id (chain) order, from ``after_id`` on."""
    return (
        await session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.sender_id == sender_id, ConsentEvent.id > after_id)
            .order_by(ConsentEvent.id)
            .limit(limit)
        )
    ).all()


async def tombstones_after(
    session: AsyncSession, sender_id: int, after_id: int, limit: int
) -> Sequence[LedgerTombstone]:
    """What is left of a sender's purged events (CR-2), in the same id order."""
    return (
        await session.scalars(
            select(LedgerTombstone)
            .where(LedgerTombstone.sender_id == sender_id, LedgerTombstone.event_id > after_id)
            .order_by(LedgerTombstone.event_id)
            .limit(limit)
        )
    ).all()


@dataclass(frozen=True, slots=True)
class ChainEnd:
    head: str | None
    more: bool  # events or tombstones beyond the id asked about exist (written meanwhile)


async def chain_end(session: AsyncSession, sender_id: int, after_id: int) -> ChainEnd | None:
    """The sender's ledger head, and whether its chain goes on beyond ``after_id``, read in one
    statement so that both come from the same snapshot even under READ COMMITTED."""
    more_events = exists().where(ConsentEvent.sender_id == sender_id, ConsentEvent.id > after_id)
    more_tombstones = exists().where(
        LedgerTombstone.sender_id == sender_id, LedgerTombstone.event_id > after_id
    )
    row = (
        await session.execute(
            select(Sender.ledger_head, or_(more_events, more_tombstones)).where(
                Sender.id == sender_id
            )
        )
    ).first()
    if row is None:
        return None
    return ChainEnd(head=row[0], more=bool(row[1]))
