"""The per-campaign compliance report (CR-3, SG-1, OO-1): for every recipient (every delivery
row), the delivery status and time, the legal basis and the consent event the delivery relied
on with its method, time, source, evidence and exact wording, and the address's newest opt-out
from the list or the whole sender. It reads the consent ledger; the ledger knows nothing of
campaigns."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.service import record_audit
from app.auth.service import Principal
from app.campaigns.service import get_campaign
from app.export_formats import csv_stream, json_array_stream, plain
from app.models import ConsentEvent, ConsentText, Delivery, Subscriber
from app.models.enums import ConsentEventKind

# Rows per short session. A batch is a few hundred kilobytes at most.
REPORT_BATCH = 1000


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


REPORT_COLUMNS = (
    "delivery_id",
    "email",
    "status",
    "sent_at",
    "basis",
    "consent_event_id",
    "consent_kind",
    "consent_method",
    "consent_obtained_at",
    "consent_recorded_at",
    "double_opt_in_requested_at",
    "confirmed_at",
    "consent_source_url",
    "consent_ip",
    "consent_user_agent",
    "consent_recorded_by",
    "consent_evidence",
    "consent_text_hash",
    "consent_text",
    "purpose",
    "optout_event_id",
    "optout_at",
    "optout_scope",
    "optout_list_id",
    "optout_channel",
)


def _report_record(row: dict[str, Any], optout: Withdrawal | None) -> dict[str, Any]:
    record = {column: plain(row.get(column)) for column in REPORT_COLUMNS}
    if optout is not None:
        record.update(
            optout_event_id=optout.event_id,
            optout_at=plain(optout.occurred_at),
            optout_scope=optout.scope,
            optout_list_id=optout.list_id,
            # An operator's opt-out names its channel; the person's own, the way they used.
            optout_channel=optout.channel or optout.method,
        )
    return record


async def _report_batches(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    campaign_id: int,
    sender_id: int,
    list_id: int,
) -> AsyncIterator[Sequence[dict[str, Any]]]:
    # One short session per batch, fetched by keyset: a long session would hold SQLite's
    # write lock for the whole download.
    after = 0
    while True:
        async with sessionmaker() as session:
            rows = await report_rows(session, campaign_id, after, REPORT_BATCH)
            optouts = await latest_withdrawals(
                session, sender_id=sender_id, list_id=list_id, emails=[r["email"] for r in rows]
            )
        if rows:
            yield [_report_record(row, optouts.get(row["email"])) for row in rows]
            after = rows[-1]["subscriber_id"]
        if len(rows) < REPORT_BATCH:
            return


async def compliance_report(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    principal: Principal,
    *,
    campaign_id: int,
    fmt: Literal["csv", "json"],
) -> AsyncIterator[bytes]:
    """CR-3, SG-1, OO-1: for every recipient of the campaign (every delivery row), the delivery
    status and time, the legal basis and the consent event the delivery relied on with its
    method, time, source, evidence and exact wording, and the address's newest opt-out from
    the list or the whole sender, with its time and channel. Streamed in keyset batches:
    memory stays bounded for any campaign size.

    An unknown campaign, or one of a sender outside a bound key's, is a 404 before the
    download starts (DS-6). The export is audited (DS-6) in
    the request's unit of work, which commits before the body is streamed.
    """
    campaign = await get_campaign(session, principal, campaign_id)
    await record_audit(
        session,
        principal,
        "campaign.compliance_report",
        "campaign",
        campaign.id,
        {"format": fmt},
    )
    records = _report_batches(
        sessionmaker,
        campaign_id=campaign.id,
        sender_id=campaign.sender_id,
        list_id=campaign.list_id,
    )
    return csv_stream(REPORT_COLUMNS, records) if fmt == "csv" else json_array_stream(records)
