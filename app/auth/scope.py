"""What a key bound to senders may see and act on (DS-6), as SQL conditions that repository
queries take, so that every admin query applies one rule.

``senders`` is ``Principal.senders``: None for a key bound to no sender (everything), else the
ids of the senders it acts for. A thing outside the key's senders is answered as if it did not
exist (404, or missing from a list), never with 403, which would confirm that it exists.

Which things belong to a sender:
- a list, a campaign, a consent event, a template: by their own ``sender_id`` (a list's
  sender for imports, subscriptions and suppressions of a list); a template without a sender
  is shared by every sender and so outside every bound key;
- a person (subscriber) is shared: one row per address, whoever holds them. A bound key sees
  a person who has a subscription to one of its senders' lists, a consent event of one of its
  senders, a delivery of one of its senders' campaigns or an import item on one of its
  senders' lists; and sees of that person only those records (DS-1: the disclosure a sender
  makes is of what that sender holds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, or_, select, true

from app.models import (
    Campaign,
    ConsentEvent,
    Delivery,
    ImportItem,
    ListImport,
    MailingList,
    Subscription,
)

SenderIds = frozenset[int] | None


def covers(senders: SenderIds, sender_id: int | None) -> bool:
    """Whether a thing of ``sender_id`` (None: of no sender) is within the key's senders."""
    return senders is None or (sender_id is not None and sender_id in senders)


def of_senders(sender_column: Any, senders: SenderIds) -> ColumnElement[bool]:
    """``sender_column`` names one of the key's senders (always true for an unbound key)."""
    if senders is None:
        return true()
    return sender_column.in_(sorted(senders))  # type: ignore[no-any-return]


def lists_of(senders: frozenset[int]) -> Select[int]:
    return select(MailingList.id).where(MailingList.sender_id.in_(sorted(senders)))


def on_lists_of(list_column: Any, senders: SenderIds) -> ColumnElement[bool]:
    """``list_column`` names a list of one of the key's senders."""
    if senders is None:
        return true()
    return list_column.in_(lists_of(senders))  # type: ignore[no-any-return]


def _held(
    subscriber_id_column: Any, sender_matches: Callable[[Any], ColumnElement[bool]]
) -> ColumnElement[bool]:
    """The person has a record of a sender that ``sender_matches``: a subscription to one of
    its lists, a consent event of it, a delivery of one of its campaigns, or an import item
    on one of its lists."""
    lists = select(MailingList.id).where(sender_matches(MailingList.sender_id))
    return or_(
        exists().where(
            Subscription.subscriber_id == subscriber_id_column, Subscription.list_id.in_(lists)
        ),
        exists().where(
            ConsentEvent.subscriber_id == subscriber_id_column,
            sender_matches(ConsentEvent.sender_id),
        ),
        exists().where(
            Delivery.subscriber_id == subscriber_id_column,
            Delivery.campaign_id == Campaign.id,
            sender_matches(Campaign.sender_id),
        ),
        exists().where(
            ImportItem.subscriber_id == subscriber_id_column,
            ImportItem.import_id == ListImport.id,
            ListImport.list_id.in_(lists),
        ),
    )


def person_visible(subscriber_id_column: Any, senders: SenderIds) -> ColumnElement[bool]:
    """The person is held by one of the key's senders (see the module's docstring)."""
    if senders is None:
        return true()
    ids = sorted(senders)
    return _held(subscriber_id_column, lambda column: column.in_(ids))


def person_held_elsewhere(
    subscriber_id_column: Any, senders: frozenset[int]
) -> ColumnElement[bool]:
    """The person also has a record of a sender outside the key's senders."""
    ids = sorted(senders)
    return _held(subscriber_id_column, lambda column: column.not_in(ids))
