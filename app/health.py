"""GET /healthz: 200 when the database answers, 503 when it does not."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.errors import ServiceUnavailable, Unavailable, database_unavailable, driver_message

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    try:
        async with request.app.state.sessionmaker() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database is "not healthy"
        cause = database_unavailable(exc) or Unavailable.UNREACHABLE
        log.warning("health check failed: %s", driver_message(exc))
        # The API's error body, so that a probe and a client read the same thing; "status" and
        # "database" stay for probes written against the first version.
        return JSONResponse(
            {
                **ServiceUnavailable(cause.detail).body(),
                "status": "unavailable",
                "database": type(exc).__name__,
            },
            status_code=ServiceUnavailable.status_code,
            headers={"Retry-After": str(cause.retry_after)},
        )
    return JSONResponse({"status": "ok"})
