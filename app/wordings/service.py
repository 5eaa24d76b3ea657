"""Registered consent wordings: the wordings an operator's own signup forms show, per list.

A JSON signup comes from a page Shodaku never sees, so the wording it reports is only the
caller's word. Registering the wordings of those pages (each stored once by hash, numbered by
version, every change in the audit log) lets a list refuse any other wording, which closes the
door to a ledger that shows a person agreeing to words they were never shown (CR-1, CC-2, CC-5).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.api_fields import keyset_page
from app.audit.service import record_audit
from app.auth.service import Principal
from app.errors import Conflict, InvalidInput, NotFound
from app.lists import repository as lists_repo
from app.models import MailingList, RegisteredWording
from app.models.base import utcnow
from app.wordings import repository as repo
from app.wordings.schemas import WordingCreate


class UnregisteredWording(InvalidInput):
    """CR-1: the list requires a registered wording and this one is not (or no longer) one."""


@dataclass(frozen=True, slots=True)
class Registration:
    wording: RegisteredWording
    text: str
    created: bool  # False: the same text was registered for the list already


async def register_wording(
    session: AsyncSession, principal: Principal, list_id: int, data: WordingCreate
) -> Registration:
    """CR-1: register a wording for a list as its next version; the text is stored once by hash.

    The same text registered again answers the existing registration (and changes nothing);
    a text that was retired stays retired: it is refused with 409, so a retirement is never
    undone by accident.
    """
    # DS-6: a key bound to senders sees no list of another sender: 404, as if none existed.
    if await lists_repo.get_visible(session, principal.senders, list_id) is None:
        raise NotFound(f"There is no list {list_id}.")
    mailing_list = await repo.list_for_update(session, list_id)
    if mailing_list is None:
        raise NotFound(f"There is no list {list_id}.")
    text_hash = await repo.store_consent_text(session, data.text)
    existing = await repo.by_hash(session, list_id, text_hash)
    if existing is not None:
        if existing.retired_at is not None:
            raise Conflict(
                f"This wording was registered as version {existing.version} of list {list_id} "
                "and retired; a retired wording is not accepted again. Register a new wording."
            )
        return Registration(existing, data.text, created=False)
    wording = RegisteredWording(
        list_id=list_id,
        version=await repo.next_version(session, list_id),
        consent_text_hash=text_hash,
        language=data.language.value if data.language else None,
    )
    session.add(wording)
    await session.flush()
    await record_audit(
        session,
        principal,
        "consent_text.register",
        "list",
        list_id,
        {"version": wording.version, "hash": text_hash},
    )
    return Registration(wording, data.text, created=True)


async def list_wordings(
    session: AsyncSession,
    principal: Principal,
    list_id: int,
    *,
    after_version: int | None,
    limit: int,
) -> tuple[list[tuple[RegisteredWording, str]], str | None]:
    if await lists_repo.get_visible(session, principal.senders, list_id) is None:
        raise NotFound(f"There is no list {list_id}.")
    rows = await repo.page(session, list_id, after_version=after_version, limit=limit + 1)
    return keyset_page(rows, limit, lambda row: row[0].version)


async def retire_wording(
    session: AsyncSession, principal: Principal, list_id: int, version: int
) -> tuple[RegisteredWording, str]:
    """CR-1: from now on new JSON signups may not use this wording; the consents already
    recorded with it keep referencing it. Retiring twice changes nothing."""
    if await lists_repo.get_visible(session, principal.senders, list_id) is None:
        raise NotFound(f"There is no list {list_id}.")
    found = await repo.by_version(session, list_id, version, for_update=True)
    if found is None:
        raise NotFound(f"List {list_id} has no registered wording version {version}.")
    wording, text = found
    if wording.retired_at is None:
        wording.retired_at = utcnow()
        await session.flush()
        await record_audit(
            session,
            principal,
            "consent_text.retire",
            "list",
            list_id,
            {"version": wording.version, "hash": wording.consent_text_hash},
        )
    return wording, text


async def check_signup_wording(
    session: AsyncSession, mailing_list: MailingList, consent_text: str
) -> None:
    """CR-1, CC-2: a JSON signup to a list that requires registered wordings must carry one of
    them, unretired, exactly. The check reads only: a refused signup writes nothing."""
    if not mailing_list.requires_registered_wording:
        return
    text_hash = repo.consent_text_hash(consent_text)
    if not await repo.accepted(session, mailing_list.id, text_hash):
        raise UnregisteredWording(
            "consent_text: not a registered wording of this list (or one since retired). This "
            "list accepts only the wordings its operator registered for its signup forms, "
            "exactly as registered; the operator registers them with "
            f"POST /api/v1/lists/{mailing_list.id}/consent-texts."
        )
