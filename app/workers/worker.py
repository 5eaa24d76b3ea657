"""Running the senders: in-process next to the API (SQLite), or ``shodaku worker`` processes
(PostgreSQL: procrastinate workers; SQLite: the same loop as in-process)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

from app.background import run_forever
from app.campaigns.service import start_due_scheduled
from app.config import Settings
from app.mail.transport import Transport, make_transport
from app.runtime import Runtime
from app.sending import deliveries
from app.sending.runner import DeliveryRunner

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 1.0


async def run_inprocess_loop(
    runtime: Runtime, transport: Transport, *, runner: DeliveryRunner | None = None
) -> None:
    """The sending loop for one process: start due scheduled campaigns, then give each sending
    campaign a few batches in turn, so one large campaign cannot starve another."""
    runner = runner or DeliveryRunner(runtime, transport)

    async def step() -> bool:
        async with runtime.sessionmaker() as session, session.begin():
            await start_due_scheduled(session)
        async with runtime.sessionmaker() as session:
            sending = await deliveries.sending_campaign_ids(session)
        worked = False
        for campaign_id in sending:
            report = await runner.drain(campaign_id, max_batches=5)
            worked = worked or report.claimed > 0 or report.skipped > 0
        return worked

    await run_forever(
        step, name="sending loop", idle_seconds=IDLE_POLL_SECONDS, wakeup=runtime.sender_wakeup
    )


async def run_worker(settings: Settings, concurrency: int | None = None) -> None:
    """``shodaku worker``: on PostgreSQL a procrastinate worker (run as many as you like, on any
    host); on SQLite the in-process loop (one writer: a second worker adds nothing)."""
    runtime = Runtime.build(settings)
    transport = make_transport(settings, runtime.recipient_hash)
    runner = DeliveryRunner(runtime, transport)
    # Loaded before any send: on SQLite the process has one connection, which a sender may hold
    # when the file transport asks for the hash (as in the API process's lifespan).
    await runtime.hasher()
    # As in the API process: long-lived objects stay out of the collector's full passes.
    gc.freeze()
    try:
        if settings.is_sqlite:
            loop_task = asyncio.create_task(run_inprocess_loop(runtime, transport, runner=runner))
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
            return
        from app.sending.dispatch import QUEUE
        from app.workers.jobs import WorkerContext, set_worker_context, worker_app

        set_worker_context(WorkerContext(runtime=runtime, runner=runner))
        app = worker_app(settings)
        async with app.open_async():
            log.info("procrastinate worker started as %s", runner.worker_id)
            await app.run_worker_async(
                queues=[QUEUE],
                concurrency=concurrency or 2,
                name=runner.worker_id,
                install_signal_handlers=True,
            )
    finally:
        await transport.close()
        await runtime.dispose()
