"""The feedback loop's fixtures: the application with a bounce domain, and its inbound listener
on a free port of the test's own event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.feedback.listener import FeedbackHandler, start_listener
from tests.conftest import BASE_URL, TEST_KEYS
from tests.smtp import free_port

BOUNCE_DOMAIN = "bounces.shodaku.example"


@pytest.fixture
def settings(database_url: str, smtp_port: int, tmp_path: Path) -> Settings:
    return Settings(
        env="dev",
        database_url=database_url,
        secret_keys=TEST_KEYS,
        base_url=BASE_URL,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        outbox_dir=tmp_path / "outbox",
        send_concurrency=2,
        send_batch_size=2,
        signup_answer_floor=0,
        bounce_domain=BOUNCE_DOMAIN,
        inbound_host="127.0.0.1",
        inbound_port=free_port(),
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
