"""Campaign sending workers (filled in by the sending work)."""

from __future__ import annotations

import asyncio

from app.mail.transport import Transport
from app.runtime import Runtime


async def run_inprocess_sender(runtime: Runtime, transport: Transport) -> None:
    while True:
        await asyncio.sleep(3600)


async def run_worker(settings: object, concurrency: int | None = None) -> None:
    raise SystemExit("the send worker arrives with the sending work")
