"""Mailing lists: each belongs to one sender and states its purpose (CC-1, CC-5)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.api_fields import keyset_page
from app.audit.service import record_audit
from app.auth.scope import covers
from app.auth.service import Principal
from app.errors import Conflict, InvalidInput, NotFound
from app.lists import repository as repo
from app.lists.schemas import ListCreate, ListUpdate
from app.models import MailingList
from app.senders import repository as senders_repo

ListWithCounts = tuple[MailingList, dict[str, int]]


def _slug_conflict(slug: str) -> Conflict:
    return Conflict(f"The slug {slug!r} is already used by another list; slugs are unique.")


async def _flush_unique_slug(session: AsyncSession, slug: str) -> None:
    # The check before is enough on SQLite (one writer); two PostgreSQL requests racing for
    # one slug meet the unique constraint here instead.
    try:
        await session.flush()
    except IntegrityError as exc:
        raise _slug_conflict(slug) from exc


async def get_list(session: AsyncSession, principal: Principal, list_id: int) -> ListWithCounts:
    mailing_list = await repo.get_visible(session, principal.senders, list_id)
    if mailing_list is None:
        raise NotFound(f"There is no list {list_id}.")
    counts = await repo.status_counts(session, [list_id])
    return mailing_list, counts[list_id]


async def list_lists(
    session: AsyncSession,
    principal: Principal,
    *,
    sender_id: int | None,
    after_id: int | None,
    limit: int,
) -> tuple[list[ListWithCounts], str | None]:
    rows = await repo.page(
        session, senders=principal.senders, sender_id=sender_id, after_id=after_id, limit=limit + 1
    )
    page, next_cursor = keyset_page(rows, limit, lambda m: m.id)
    counts = await repo.status_counts(session, [m.id for m in page])
    return [(m, counts[m.id]) for m in page], next_cursor


async def create_list(
    session: AsyncSession, principal: Principal, data: ListCreate
) -> ListWithCounts:
    """Create a list for an existing sender, with its purpose (CC-5).

    An unknown ``sender_id`` is a 422 (InvalidInput), not a 404: the body names something that
    does not exist, while the resource addressed, /lists, does. A taken slug is a 409. A
    sender outside a bound key's senders is answered the same as an unknown one (DS-6).
    """
    if (
        not covers(principal.senders, data.sender_id)
        or await senders_repo.get(session, data.sender_id) is None
    ):
        raise InvalidInput(f"sender_id: there is no sender {data.sender_id}.")
    if await repo.slug_taken(session, data.slug):
        raise _slug_conflict(data.slug)
    mailing_list = MailingList(**data.model_dump())
    session.add(mailing_list)
    await _flush_unique_slug(session, data.slug)
    await record_audit(
        session,
        principal,
        "list.create",
        "list",
        mailing_list.id,
        {"slug": mailing_list.slug, "sender_id": mailing_list.sender_id},
    )
    return mailing_list, {}


async def update_list(
    session: AsyncSession, principal: Principal, list_id: int, data: ListUpdate
) -> ListWithCounts:
    """Change the fields given. The sender cannot change (CC-1): every consent on the list was
    given to that sender; another sender needs a list of its own and consents of its own."""
    mailing_list = await repo.get_visible(session, principal.senders, list_id)
    if mailing_list is None:
        raise NotFound(f"There is no list {list_id}.")
    changes = data.model_dump(exclude_unset=True)
    new_sender = changes.pop("sender_id", mailing_list.sender_id)
    if new_sender != mailing_list.sender_id:
        raise InvalidInput(
            "sender_id: a list cannot move to another sender; its subscribers consented to "
            "this sender only (CC-1). Create a new list for the other sender."
        )
    slug = changes.get("slug")
    if slug is not None and await repo.slug_taken(session, slug, other_than=list_id):
        raise _slug_conflict(slug)
    for name, value in changes.items():
        setattr(mailing_list, name, value)
    await _flush_unique_slug(session, mailing_list.slug)
    await record_audit(
        session, principal, "list.update", "list", mailing_list.id, {"fields": sorted(changes)}
    )
    counts = await repo.status_counts(session, [list_id])
    return mailing_list, counts[list_id]
