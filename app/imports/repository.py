"""Queries of the imports domain: acquisition records, the rows they brought, and the bulk
steps of a batch (subscribers by address, suppression candidates)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.scope import SenderIds, on_lists_of
from app.db import insert_for
from app.models import ImportItem, ListImport, Subscriber, Suppression
from app.models.base import utcnow


async def add_import(session: AsyncSession, record: ListImport) -> ListImport:
    session.add(record)
    await session.flush()
    return record


async def get(session: AsyncSession, import_id: int) -> ListImport | None:
    return await session.get(ListImport, import_id)


async def page(
    session: AsyncSession,
    *,
    senders: SenderIds,
    list_id: int | None,
    before_id: int | None,
    limit: int,
) -> Sequence[ListImport]:
    """Imports, newest first, keyset-paginated by id; to a bound key's senders' lists only."""
    stmt = (
        select(ListImport)
        .where(on_lists_of(ListImport.list_id, senders))
        .order_by(ListImport.id.desc())
        .limit(limit)
    )
    if list_id is not None:
        stmt = stmt.where(ListImport.list_id == list_id)
    if before_id is not None:
        stmt = stmt.where(ListImport.id < before_id)
    return (await session.scalars(stmt)).all()


async def set_counts(session: AsyncSession, import_id: int, counts: dict[str, Any]) -> None:
    await session.execute(
        update(ListImport).where(ListImport.id == import_id).values(counts=counts)
    )


async def rows_already_imported(
    session: AsyncSession, import_id: int, emails: Collection[str]
) -> dict[str, int]:
    """Of these addresses, those an earlier batch of this import recorded, with their row."""
    if not emails:
        return {}
    rows = await session.execute(
        select(ImportItem.email, ImportItem.row_number).where(
            ImportItem.import_id == import_id, ImportItem.email.in_(emails)
        )
    )
    return {email: row for email, row in rows}


async def suppression_candidates(session: AsyncSession, hashes: Collection[str]) -> set[str]:
    """Address hashes with a suppression of any scope: a cheap filter for a whole batch. Whether
    one covers this list is then asked of the consent gate's own rule."""
    if not hashes:
        return set()
    found = await session.scalars(
        select(Suppression.address_hash).where(Suppression.address_hash.in_(hashes)).distinct()
    )
    return set(found)


async def get_or_create_subscribers(
    session: AsyncSession, people: Sequence[tuple[str, str, str | None]]
) -> dict[str, int]:
    """Subscriber ids for (address, address hash, name) triples, creating those not yet known,
    in two statements. An existing profile is left as it is: a third party's list does not
    overwrite what the person told us. ON CONFLICT DO NOTHING, so a concurrent signup or
    import of the same address ends on the same row."""
    if not people:
        return {}
    now = utcnow()
    upsert = insert_for(session)
    await session.execute(
        upsert(Subscriber).on_conflict_do_nothing(index_elements=["email"]),
        [
            {
                "email": email,
                "address_hash": address_hash,
                "name": name,
                "attributes": {},
                "created_at": now,
                "updated_at": now,
            }
            # In address order: two imports racing over the same addresses on PostgreSQL then
            # take the unique index's locks in the same order and cannot deadlock.
            for email, address_hash, name in sorted(people)
        ],
    )
    return await subscriber_ids(session, [email for email, _, _ in people])


async def subscriber_ids(session: AsyncSession, emails: Collection[str]) -> dict[str, int]:
    if not emails:
        return {}
    rows = await session.execute(
        select(Subscriber.email, Subscriber.id).where(Subscriber.email.in_(emails))
    )
    return {email: subscriber_id for email, subscriber_id in rows}


async def add_items(session: AsyncSession, items: Sequence[dict[str, Any]]) -> None:
    if items:
        await session.execute(insert(ImportItem), list(items))


async def items_page(
    session: AsyncSession,
    *,
    import_id: int,
    outcome: str | None,
    after_id: int | None,
    limit: int,
) -> Sequence[ImportItem]:
    """The rows an import brought, in file order, keyset-paginated by id."""
    stmt = (
        select(ImportItem)
        .where(ImportItem.import_id == import_id)
        .order_by(ImportItem.id)
        .limit(limit)
    )
    if outcome is not None:
        stmt = stmt.where(ImportItem.outcome == outcome)
    if after_id is not None:
        stmt = stmt.where(ImportItem.id > after_id)
    return (await session.scalars(stmt)).all()
