"""Queries of the proof domain: walking a sender's ledger for verification, and the rows of a
campaign's compliance report. All are keyset batches, so callers hold one batch at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    ConsentEvent,
    ConsentText,
    Delivery,
    LedgerTombstone,
    Sender,
    Subscriber,
)
from app.models.enums import ConsentEventKind


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


# The report's columns, each from the delivery, the recipient or the consent event relied on.
_REPORT_SELECT = (
    Delivery.id.label("delivery_id"),
    Subscriber.email.label("email"),
    Delivery.status.label("status"),
    Delivery.sent_at.label("sent_at"),
    ConsentEvent.basis.label("basis"),
    ConsentEvent.id.label("consent_event_id"),
    ConsentEvent.kind.label("consent_kind"),
    ConsentEvent.method.label("consent_method"),
    ConsentEvent.obtained_at.label("consent_obtained_at"),
    ConsentEvent.occurred_at.label("consent_recorded_at"),
    ConsentEvent.double_opt_in_requested_at.label("double_opt_in_requested_at"),
    ConsentEvent.confirmed_at.label("confirmed_at"),
    ConsentEvent.source_url.label("consent_source_url"),
    ConsentEvent.ip.label("consent_ip"),
    ConsentEvent.user_agent.label("consent_user_agent"),
    ConsentEvent.recorded_by.label("consent_recorded_by"),
    ConsentEvent.evidence.label("consent_evidence"),
    ConsentEvent.consent_text_hash.label("consent_text_hash"),
    ConsentText.text.label("consent_text"),
    ConsentEvent.purpose.label("purpose"),
    Delivery.subscriber_id.label("subscriber_id"),
)


async def report_rows(
    session: AsyncSession, campaign_id: int, after_subscriber_id: int, limit: int
) -> list[dict[str, Any]]:
    """CR-3, SG-1: the campaign's deliveries in recipient (subscriber id) order, after the
    subscriber ``after_subscriber_id``, each with the recipient's address, the consent event
    the delivery relied on (NULLs if none yet) and the exact wording it references.

    Keyed on the subscriber id because (campaign_id, subscriber_id) is a unique index: each
    batch is one index range scan, however many deliveries other campaigns have. Plain
    columns, not ORM objects: a report of a million rows should not build a million."""
    stmt = (
        select(*_REPORT_SELECT)
        .select_from(Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .outerjoin(ConsentEvent, ConsentEvent.id == Delivery.consent_event_id)
        .outerjoin(ConsentText, ConsentText.hash == ConsentEvent.consent_text_hash)
        .where(Delivery.campaign_id == campaign_id, Delivery.subscriber_id > after_subscriber_id)
        .order_by(Delivery.subscriber_id)
        .limit(limit)
    )
    return [dict(row._mapping) for row in await session.execute(stmt)]


@dataclass(frozen=True, slots=True)
class Withdrawal:
    event_id: int
    occurred_at: datetime
    scope: str | None
    list_id: int | None
    channel: str | None
    method: str


async def latest_withdrawals(
    session: AsyncSession, *, sender_id: int, list_id: int, emails: Sequence[str]
) -> dict[str, Withdrawal]:
    """OO-1, OO-5: for each address, its newest withdrawal that covers the list: one for that
    list, or one for every list of the sender."""
    if not emails:
        return {}
    rows = await session.execute(
        select(
            ConsentEvent.email,
            ConsentEvent.id,
            ConsentEvent.occurred_at,
            ConsentEvent.scope,
            ConsentEvent.list_id,
            ConsentEvent.channel,
            ConsentEvent.method,
        )
        .where(
            ConsentEvent.kind == ConsentEventKind.WITHDRAW.value,
            ConsentEvent.sender_id == sender_id,
            ConsentEvent.email.in_(sorted(set(emails))),
            or_(ConsentEvent.list_id == list_id, ConsentEvent.list_id.is_(None)),
        )
        .order_by(ConsentEvent.id)
    )
    return {
        email: Withdrawal(event_id, occurred_at, scope, optout_list_id, channel, method)
        for email, event_id, occurred_at, scope, optout_list_id, channel, method in rows
    }
