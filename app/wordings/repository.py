"""Consent wordings: every exact text a person was shown, stored once by its hash (CR-1), and
the wordings an operator registered for a list."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import insert_for
from app.models import ConsentText, MailingList, RegisteredWording


def consent_text_hash(text: str) -> str:
    """The key of a wording in consent_texts: the SHA-256 of its exact text (CR-1)."""
    return hashlib.sha256(text.encode()).hexdigest()


async def store_consent_text(session: AsyncSession, text: str) -> str:
    """CR-1: each exact wording once, keyed by its SHA-256; returns the hash."""
    digest = consent_text_hash(text)
    insert = insert_for(session)
    await session.execute(
        insert(ConsentText)
        .values(hash=digest, text=text)
        .on_conflict_do_nothing(index_elements=["hash"])
    )
    return digest


async def consent_text(session: AsyncSession, text_hash: str | None) -> str | None:
    """The wording stored under this hash (CR-1), or None."""
    if text_hash is None:
        return None
    return await session.scalar(select(ConsentText.text).where(ConsentText.hash == text_hash))


async def list_for_update(session: AsyncSession, list_id: int) -> MailingList | None:
    """The list, locked: registrations of one list take their version numbers one at a time."""
    return (
        await session.scalars(
            select(MailingList).where(MailingList.id == list_id).with_for_update()
        )
    ).first()


async def next_version(session: AsyncSession, list_id: int) -> int:
    latest = await session.scalar(
        select(func.max(RegisteredWording.version)).where(RegisteredWording.list_id == list_id)
    )
    return int(latest or 0) + 1


async def by_hash(session: AsyncSession, list_id: int, text_hash: str) -> RegisteredWording | None:
    return (
        await session.scalars(
            select(RegisteredWording).where(
                RegisteredWording.list_id == list_id,
                RegisteredWording.consent_text_hash == text_hash,
            )
        )
    ).first()


async def by_version(
    session: AsyncSession, list_id: int, version: int, *, for_update: bool = False
) -> tuple[RegisteredWording, str] | None:
    stmt = (
        select(RegisteredWording, ConsentText.text)
        .join(ConsentText, ConsentText.hash == RegisteredWording.consent_text_hash)
        .where(RegisteredWording.list_id == list_id, RegisteredWording.version == version)
    )
    if for_update:
        stmt = stmt.with_for_update(of=RegisteredWording)
    row = (await session.execute(stmt)).first()
    return None if row is None else (row[0], row[1])


async def page(
    session: AsyncSession, list_id: int, *, after_version: int | None, limit: int
) -> Sequence[tuple[RegisteredWording, str]]:
    """A list's wordings by version, keyset-paginated; ``limit`` rows at most."""
    stmt = (
        select(RegisteredWording, ConsentText.text)
        .join(ConsentText, ConsentText.hash == RegisteredWording.consent_text_hash)
        .where(RegisteredWording.list_id == list_id)
        .order_by(RegisteredWording.version)
        .limit(limit)
    )
    if after_version is not None:
        stmt = stmt.where(RegisteredWording.version > after_version)
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]


async def accepted(session: AsyncSession, list_id: int, text_hash: str) -> bool:
    """Is this wording registered for the list and not retired?"""
    found = await session.scalar(
        select(RegisteredWording.id).where(
            RegisteredWording.list_id == list_id,
            RegisteredWording.consent_text_hash == text_hash,
            RegisteredWording.retired_at.is_(None),
        )
    )
    return found is not None
