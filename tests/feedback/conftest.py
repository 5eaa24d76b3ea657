"""The feedback loop's fixtures: the application with a bounce domain, and its inbound listener
on a free port of the test's own event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.config import Settings
from app.feedback.listener import FeedbackHandler, start_listener
from tests.smtp import free_port

BOUNCE_DOMAIN = "bounces.shodaku.example"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with a bounce domain and an inbound port."""
    return settings.model_copy(
        update={
            "send_concurrency": 2,
            "send_batch_size": 2,
            "bounce_domain": BOUNCE_DOMAIN,
            "inbound_host": "127.0.0.1",
            "inbound_port": free_port(),
        }
    )


@pytest.fixture
async def inbound(app: Any) -> AsyncIterator[FeedbackHandler]:
    """The listener ``shodaku inbound`` runs, on this test's loop; its counts are the handler's."""
    server, handler = await start_listener(app.state.runtime)
    try:
        yield handler
    finally:
        server.close()
        await server.wait_closed()
