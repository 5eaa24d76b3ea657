"""People: created without consent (CC-1), corrected but never re-addressed (DS-2)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses import AddressHasher, mask_address
from app.api_fields import keyset_page
from app.audit.service import record_audit
from app.auth.scope import SenderIds
from app.auth.service import Principal
from app.errors import Conflict, Forbidden, NotFound
from app.lists import repository as lists_repo
from app.models import Subscriber, Subscription
from app.models.enums import SubscriptionStatus
from app.subscribers import repository as repo
from app.subscribers.schemas import SubscriberCreate, SubscriberUpdate
from app.subscriptions import repository as subscriptions_repo
from app.subscriptions.repository import GateVerdict


@dataclass(frozen=True, slots=True)
class SubscriberView:
    subscriber: Subscriber
    subscriptions: list[tuple[Subscription, GateVerdict]]


async def _view(
    session: AsyncSession, subscriber: Subscriber, senders: SenderIds = None
) -> SubscriberView:
    found = await repo.subscriptions_with_gate(session, [subscriber.id], senders)
    return SubscriberView(subscriber, found[subscriber.id])


async def _visible(session: AsyncSession, senders: SenderIds, subscriber_id: int) -> Subscriber:
    """DS-6: a person none of a bound key's senders holds does not exist for it."""
    subscriber = await subscriptions_repo.visible_subscriber(session, senders, subscriber_id)
    if subscriber is None:
        raise NotFound(f"There is no subscriber {subscriber_id}.")
    return subscriber


async def get_subscriber(
    session: AsyncSession, principal: Principal, subscriber_id: int
) -> SubscriberView:
    subscriber = await _visible(session, principal.senders, subscriber_id)
    return await _view(session, subscriber, principal.senders)


async def list_subscribers(
    session: AsyncSession,
    principal: Principal,
    *,
    email: str | None,
    list_id: int | None,
    status: SubscriptionStatus | None,
    after_id: int | None,
    limit: int,
) -> tuple[list[SubscriberView], str | None]:
    if (
        list_id is not None
        and await lists_repo.get_visible(session, principal.senders, list_id) is None
    ):
        raise NotFound(f"There is no list {list_id}.")
    rows = await repo.page(
        session,
        senders=principal.senders,
        email=email,
        list_id=list_id,
        status=status.value if status else None,
        after_id=after_id,
        limit=limit + 1,
    )
    page, next_cursor = keyset_page(rows, limit, lambda s: s.id)
    found = await repo.subscriptions_with_gate(session, [s.id for s in page], principal.senders)
    return [SubscriberView(s, found[s.id]) for s in page], next_cursor


async def create_subscriber(
    session: AsyncSession, hasher: AddressHasher, principal: Principal, data: SubscriberCreate
) -> SubscriberView:
    """A person with no consent at all: no subscription, so the gate never lets mail through
    to them (CC-1) until consent is recorded for a list. A known address is a 409.

    A key bound to senders adds people through consents or imports on its own lists instead:
    a bare person would be held by none of its senders, and a 409 would tell it that another
    sender holds the address (DS-6)."""
    if principal.senders is not None:
        raise Forbidden(
            "A key bound to senders adds people by recording their consent on one of its lists "
            "(POST /lists/{id}/consents) or by an import."
        )
    if await subscriptions_repo.subscriber_by_email(session, data.email) is not None:
        raise Conflict("A subscriber with this address already exists.")
    subscriber, created = await subscriptions_repo.get_or_create_subscriber(
        session,
        email=data.email,
        address_hash=hasher(data.email),
        name=data.name,
        attributes=data.attributes,
    )
    if not created:  # created meanwhile by a concurrent request
        raise Conflict("A subscriber with this address already exists.")
    await record_audit(
        session,
        principal,
        "subscriber.create",
        "subscriber",
        subscriber.id,
        {"email": mask_address(subscriber.email)},
    )
    return await _view(session, subscriber, principal.senders)


async def update_subscriber(
    session: AsyncSession, principal: Principal, subscriber_id: int, data: SubscriberUpdate
) -> SubscriberView:
    """DS-2: correct the name and attributes (the schema refuses an address change). The
    profile is one per person: a bound key corrects it for a person its senders hold."""
    subscriber = await _visible(session, principal.senders, subscriber_id)
    changes = data.model_dump(exclude_unset=True, exclude={"email"})
    if "attributes" in changes and changes["attributes"] is None:
        changes["attributes"] = {}
    for name, value in changes.items():
        setattr(subscriber, name, value)
    await session.flush()
    # Field names only: the values are personal data.
    await record_audit(
        session,
        principal,
        "subscriber.update",
        "subscriber",
        subscriber.id,
        {"fields": sorted(changes)},
    )
    return await _view(session, subscriber, principal.senders)
