"""Senders and lists for the public-page tests, inserted directly (the admin API is not needed
to test what a recipient sees)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.models import (
    MailingList,
    OutboxMessage,
    RegisteredWording,
    Sender,
    Subscriber,
    Subscription,
)
from app.runtime import Runtime
from app.wordings.repository import store_consent_text
from tests.queries import count

SENDER_NAME = "株式会社承諾商事"
POSTAL_ADDRESS = "〒100-0001 東京都千代田区千代田1-1"
PURPOSE = "新商品とセールのご案内をお送りするため"
EN_PURPOSE = "To tell you about new products and sales"


async def make_sender(runtime: Runtime, **overrides: Any) -> Sender:
    values: dict[str, Any] = {
        "name": SENDER_NAME,
        "postal_address": POSTAL_ADDRESS,
        "contact_email": "support@shodaku-shoji.example",
        "contact_phone": "03-1234-5678",
        "from_email": "news@shodaku-shoji.example",
        "from_name": "承諾商事ニュース",
    }
    values.update(overrides)
    async with runtime.sessionmaker() as session, session.begin():
        sender = Sender(**values)
        session.add(sender)
    return sender


async def make_list(runtime: Runtime, sender: Sender, **overrides: Any) -> MailingList:
    values: dict[str, Any] = {
        "sender_id": sender.id,
        "name": "承諾ニュース",
        "slug": "news",
        "purpose": PURPOSE,
        "double_opt_in": True,
        "language": "ja",
    }
    values.update(overrides)
    async with runtime.sessionmaker() as session, session.begin():
        mailing_list = MailingList(**values)
        session.add(mailing_list)
    return mailing_list


async def register_wording(runtime: Runtime, mailing_list: MailingList, text: str) -> None:
    """Register a wording for the list, as ``POST /lists/{id}/consent-texts`` does (CR-1)."""
    async with runtime.sessionmaker() as session, session.begin():
        text_hash = await store_consent_text(session, text)
        session.add(
            RegisteredWording(list_id=mailing_list.id, version=1, consent_text_hash=text_hash)
        )


async def subscriber_by_email(runtime: Runtime, email: str) -> Subscriber | None:
    async with runtime.sessionmaker() as session:
        return (await session.scalars(select(Subscriber).where(Subscriber.email == email))).first()


async def subscription_of(runtime: Runtime, email: str, list_id: int) -> Subscription | None:
    async with runtime.sessionmaker() as session:
        return (
            await session.scalars(
                select(Subscription)
                .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
                .where(Subscriber.email == email, Subscription.list_id == list_id)
            )
        ).first()


async def outbox_rows(runtime: Runtime) -> int:
    return await count(runtime, OutboxMessage)
