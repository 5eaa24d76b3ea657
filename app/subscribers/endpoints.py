"""HTTP endpoints of /subscribers; see docs/reference.md."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.api_fields import DB_ID_MAX, Cursor, EmailAddress, Page
from app.auth.dependencies import AdminKey, ReadKey
from app.db import SessionDep
from app.deps import HasherDep
from app.models.enums import SubscriptionStatus
from app.subscribers import service
from app.subscribers.schemas import SubscriberCreate, SubscriberOut, SubscriberUpdate
from app.subscribers.service import SubscriberView
from app.subscriptions.schemas import SubscriptionOut

router = APIRouter(prefix="/subscribers", tags=["subscribers"])

SubscriberId = Annotated[int, Path(ge=1, le=DB_ID_MAX)]


def _out(view: SubscriberView) -> SubscriberOut:
    subscriber = view.subscriber
    return SubscriberOut(
        id=subscriber.id,
        email=subscriber.email,
        name=subscriber.name,
        attributes=subscriber.attributes,
        subscriptions=[SubscriptionOut.of(s, verdict) for s, verdict in view.subscriptions],
        created_at=subscriber.created_at,
        updated_at=subscriber.updated_at,
    )


@router.post("", status_code=201)
async def create_subscriber(
    body: SubscriberCreate, session: SessionDep, hasher: HasherDep, principal: AdminKey
) -> SubscriberOut:
    return _out(await service.create_subscriber(session, hasher, principal, body))


@router.get("")
async def list_subscribers(
    session: SessionDep,
    principal: ReadKey,
    email: Annotated[EmailAddress | None, Query()] = None,
    list_id: Annotated[int | None, Query(ge=1, le=DB_ID_MAX)] = None,
    status: Annotated[SubscriptionStatus | None, Query()] = None,
    cursor: Annotated[Cursor, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[SubscriberOut]:
    views, next_cursor = await service.list_subscribers(
        session,
        principal,
        email=email,
        list_id=list_id,
        status=status,
        after_id=cursor,
        limit=limit,
    )
    return Page[SubscriberOut](items=[_out(v) for v in views], next_cursor=next_cursor)


@router.get("/{subscriber_id}")
async def get_subscriber(
    subscriber_id: SubscriberId, session: SessionDep, principal: ReadKey
) -> SubscriberOut:
    return _out(await service.get_subscriber(session, principal, subscriber_id))


@router.patch("/{subscriber_id}")
async def update_subscriber(
    subscriber_id: SubscriberId, body: SubscriberUpdate, session: SessionDep, principal: AdminKey
) -> SubscriberOut:
    return _out(await service.update_subscriber(session, principal, subscriber_id, body))
