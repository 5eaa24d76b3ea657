"""One error base class, rendered by one handler as ``{"error": "<Class>", "detail": "..."}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class AppError(Exception):
    status_code = 400

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}

    @property
    def error(self) -> str:
        return type(self).__name__

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail, **self.extra}


class NotFound(AppError):
    status_code = 404


class Conflict(AppError):
    status_code = 409


class InvalidInput(AppError):
    status_code = 422


class Unauthorized(AppError):
    status_code = 401


class Forbidden(AppError):
    status_code = 403


class TooManyRequests(AppError):
    status_code = 429


class ServiceUnavailable(AppError):
    status_code = 503


class InvalidToken(AppError):
    """A tampered, unknown or expired link token: a plain 400 page, never a 500."""

    status_code = 400


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


def validation_detail(errors: list[Any]) -> str:
    return "; ".join(f"{_location(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse(
            {"error": "ValidationError", "detail": validation_detail(errors), "errors": errors},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {404: "NotFound", 405: "MethodNotAllowed", 400: "BadRequest", 413: "TooLarge"}
        return JSONResponse(
            {"error": names.get(exc.status_code, "HTTPError"), "detail": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
        # Connection-level failures (database restarting, disk full, file read-only) are the
        # service being unavailable, not a bug: 503, nothing half-written (the unit of work
        # rolled back). Anything else stays a 500 and reaches the log.
        if not isinstance(exc, OperationalError) and not getattr(
            exc, "connection_invalidated", False
        ):
            raise exc
        log.warning("database unavailable: %s", type(exc).__name__)
        return JSONResponse(
            {"error": "ServiceUnavailable", "detail": "The database is unavailable; retry."},
            status_code=503,
            headers={"Retry-After": "5"},
        )
