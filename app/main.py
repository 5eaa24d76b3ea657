"""The application: create_app() builds it; the lifespan runs the background senders."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from app.access_log import AccessLogMiddleware
from app.api_docs import install_api_docs
from app.body_limit import MIB, BodyLimitMiddleware
from app.config import Settings
from app.errors import API_ERROR_RESPONSES, error_responses, install_error_handlers
from app.forwarded import ForwardedHeadersMiddleware
from app.mail.dkim import DkimKeyring
from app.mail.system_mail import SystemMail
from app.mail.transport import Transport, make_transport
from app.public import pages as public_pages
from app.public.answer_time import SignupAnswerFloor
from app.runtime import Runtime
from app.sending.outbox import run_outbox_sender

log = logging.getLogger(__name__)

# Request body limits. Every JSON body of the API and every public form fits in 1 MiB; a
# template may be 500,000 characters in each of html and text (escaped JSON: up to 6 bytes a
# character); an import carries a CSV file of a whole list.
BODY_LIMIT = 1 * MIB
BODY_LIMITS_BY_PREFIX = (("/api/v1/templates", 8 * MIB), ("/api/v1/imports", 64 * MIB))


def create_app(
    settings: Settings | None = None,
    *,
    run_outbox: bool = True,
    run_sender: bool | None = None,
    transport: Transport | None = None,
) -> FastAPI:
    """Build the app. ``run_sender`` (default: on SQLite only) runs the campaign sender in this
    process; on PostgreSQL the sending is done by ``shodaku worker`` processes."""
    settings = settings or Settings()
    runtime = Runtime.build(settings)
    mail_transport = transport or make_transport(settings, runtime.recipient_hash)
    # A DKIM key that cannot be read stops the start, not the first confirmation mail.
    system_mail = SystemMail(dkim=DkimKeyring.from_settings(settings))
    with_sender = settings.is_sqlite if run_sender is None else run_sender

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Loaded once before any request: on SQLite the process has one connection, and fetching
        # the address key while a request held it would wait for itself.
        await runtime.hasher()
        # Everything imported and built so far lives as long as the process: keep it out of
        # the collector's full passes, which otherwise walk it all and pause every request.
        gc.freeze()
        tasks: list[asyncio.Task[None]] = []
        if run_outbox:
            tasks.append(
                asyncio.create_task(run_outbox_sender(runtime, mail_transport, system_mail))
            )
        if with_sender:
            from app.workers.worker import run_inprocess_loop

            tasks.append(asyncio.create_task(run_inprocess_loop(runtime, mail_transport)))
        if run_outbox and settings.is_sqlite:
            # On PostgreSQL the purge is a procrastinate periodic task run by the workers.
            from app.privacy.retention import run_periodic_purge

            tasks.append(asyncio.create_task(run_periodic_purge(runtime)))
        inbound: asyncio.Server | None = None
        if settings.inbound_port is not None and settings.bounce_domain is not None:
            # The single-machine set-up hears bounces and complaints in this process too.
            from app.feedback.listener import start_listener

            inbound, _handler = await start_listener(runtime)
        try:
            yield
        finally:
            if inbound is not None:
                inbound.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await mail_transport.close()
            await runtime.dispose()

    app = FastAPI(
        title="Shodaku",
        version="1.0.0",
        summary="Newsletter sending in which consent is evidence, enforced as each message leaves.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.sessionmaker = runtime.sessionmaker
    app.state.settings = settings
    app.state.transport = mail_transport
    app.state.system_mail = system_mail
    install_error_handlers(app)
    public_pages.install(app)
    app.add_middleware(BodyLimitMiddleware, default=BODY_LIMIT, by_prefix=BODY_LIMITS_BY_PREFIX)
    app.add_middleware(SignupAnswerFloor, floor=settings.signup_answer_floor)
    app.add_middleware(AccessLogMiddleware)
    # Outermost: the access log, the signup limits and the consent records see the client.
    app.add_middleware(ForwardedHeadersMiddleware, trusted=settings.forwarded_allow_ips)

    from app.apikeys.endpoints import router as api_keys_router
    from app.audit.endpoints import router as audit_router
    from app.campaigns.endpoints import router as campaigns_router
    from app.health import router as health_router
    from app.home import router as home_router
    from app.imports.endpoints import router as imports_router
    from app.lists.endpoints import router as lists_router
    from app.privacy.endpoints import router as privacy_router
    from app.public.endpoints import router as public_router
    from app.senders.endpoints import router as senders_router
    from app.subscribers.endpoints import router as subscribers_router
    from app.subscriptions.endpoints import router as consent_router
    from app.templates.endpoints import router as templates_router
    from app.wordings.endpoints import router as wordings_router

    for router in (
        senders_router,
        lists_router,
        wordings_router,
        subscribers_router,
        consent_router,
        templates_router,
        campaigns_router,
        imports_router,
        privacy_router,
        audit_router,
        api_keys_router,
    ):
        # Every admin operation may also answer these, with the API error body; an import
        # is JSON or a multipart CSV, anything else 415.
        responses = API_ERROR_RESPONSES
        if router is imports_router:
            responses = {**responses, **error_responses(415)}
        app.include_router(router, prefix="/api/v1", responses=responses)
    app.include_router(public_router)
    app.include_router(health_router)
    app.include_router(home_router)
    install_api_docs(app)
    return app
