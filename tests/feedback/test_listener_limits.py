"""Hostile input at the listener: messages past the size limit, more connections than allowed,
malformed MIME to a valid address. Nothing crashes, and nobody is suppressed by any of them."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib
import pytest
from sqlalchemy import func, select

from app.feedback.listener import FeedbackHandler, start_listener
from app.models import Delivery, FeedbackEvent, Suppression
from app.sending.runner import DeliveryRunner
from tests.factories import consent, make_world, start
from tests.feedback import corpus
from tests.smtp import free_port


@pytest.fixture
async def small_listener(app: Any) -> AsyncIterator[tuple[int, FeedbackHandler]]:
    """The listener with small limits: 20 kB messages, three connections."""
    runtime = app.state.runtime
    settings = runtime.settings.model_copy(
        update={"inbound_max_message_bytes": 20_000, "inbound_max_connections": 3}
    )
    port = free_port()
    server, handler = await start_listener(
        dataclasses.replace(runtime, settings=settings), host="127.0.0.1", port=port
    )
    try:
        yield port, handler
    finally:
        server.close()
        await server.wait_closed()


async def count(runtime: Any, model: Any) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def a_bounce_address(admin: Any, app: Any, runtime: Any) -> str:
    """The VERP envelope sender of a message that really went out."""
    world = await make_world(runtime)
    await consent(runtime, world.list_id, "taro@example.jp")
    started = await start(admin, world)
    report = await DeliveryRunner(runtime, app.state.transport).drain(started["id"])
    assert report.sent == 1
    async with runtime.sessionmaker() as session:
        delivery_id = await session.scalar(select(Delivery.id))
    assert delivery_id is not None
    return str(runtime.bounce_address(delivery_id=delivery_id))


@pytest.mark.usefixtures("smtp_server")
async def test_a_message_past_the_size_limit_is_refused_and_changes_nothing(
    admin, app, runtime, small_listener
):
    port, _handler = small_listener
    address = await a_bounce_address(admin, app, runtime)
    big = corpus.dsn(address) + b"x" * 30_000 + b"\r\n"
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
    async with client:
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await client.sendmail("", [address], big)
    assert refused.value.code == 552
    assert await count(runtime, FeedbackEvent) == 0


async def test_connections_beyond_the_limit_are_answered_421_and_the_others_keep_working(
    app, runtime, small_listener
):
    port, handler = small_listener
    held = [aiosmtplib.SMTP(hostname="127.0.0.1", port=port) for _ in range(3)]
    for client in held:
        await client.connect()
    try:
        extra = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        with pytest.raises(aiosmtplib.SMTPConnectResponseError) as refused:
            await extra.connect()
        assert refused.value.code == 421
        assert handler.connections == 3
        assert (await held[0].noop())[0] == 250
    finally:
        for client in held:
            await client.quit()
    # Once they have gone, a new connection is welcome again.
    again = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
    async with again:
        assert (await again.noop())[0] == 250


@pytest.mark.parametrize("message", corpus.MALFORMED, ids=range(len(corpus.MALFORMED)))
@pytest.mark.usefixtures("smtp_server")
async def test_malformed_mime_to_a_valid_address_is_accepted_and_read_as_nothing(
    admin, app, runtime, small_listener, message
):
    port, handler = small_listener
    address = await a_bounce_address(admin, app, runtime)
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
    async with client:
        await client.sendmail("", [address], message or b"\r\n")
    # Read as nothing, or (a failed DSN whose status is unreadable) as one soft bounce, which
    # suppresses nobody; never a retry, never an exception.
    assert handler.counts["ignored"] + handler.counts["soft_bounce"] == 1
    assert await count(runtime, FeedbackEvent) == handler.counts["soft_bounce"]
    assert await count(runtime, Suppression) == 0
    assert handler.counts["retry"] == 0
