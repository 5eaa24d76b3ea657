"""One error base class, rendered by one handler as ``{"error": "<Class>", "detail": "..."}``."""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as SqlalchemyTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """The body of every error answer (docs/reference.md): the error's class and one sentence for
    a person.

    Some errors add fields: ``errors`` (each failed field of a 422 ValidationError) and
    ``reasons`` (each failed check of a campaign's send preflight) with, when the list's charset
    cannot carry some characters, ``unencodable`` (those characters by where they are).
    """

    model_config = ConfigDict(extra="allow")

    error: str
    detail: str


_RESPONSE_DESCRIPTIONS = {
    400: "Bad request (e.g. a malformed form body)",
    401: "No API key, or a key that is not valid",
    403: "A read-only key on a write, or a key bound to senders where it may not act",
    404: "No such resource",
    409: "Conflicts with the resource's current state",
    413: "The request body is larger than this endpoint accepts",
    415: "A body in a media type this endpoint does not read",
    422: "Validation error: the fields that failed, each with the reason",
    429: "Too many requests; see Retry-After",
    503: "The database cannot serve now; see Retry-After",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error status codes, each with :class:`ErrorBody`."""
    return {
        code: {"model": ErrorBody, "description": _RESPONSE_DESCRIPTIONS[code]} for code in codes
    }


# What any operation of the admin API may answer besides its own success (OpenAPI).
API_ERROR_RESPONSES = error_responses(400, 401, 403, 404, 409, 413, 422, 503)


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
    """A tampered, unknown or expired link token: a plain 400 page, never a 500.

    ``list_id`` is set when the link could be read and its list is known (an expired or
    finished confirm link): the page can then name the sender to contact and the form to use."""

    status_code = 400
    list_id: int | None = None


class Unavailable(Enum):
    """Why the database cannot serve a request: each a 503, with a sentence for the caller."""

    UNREACHABLE = ("The database cannot be reached (it may be restarting); retry shortly.", 5)
    BUSY = ("The database is busy; retry shortly.", 5)
    FULL = ("The database has no space left to store this; retry later.", 60)
    READ_ONLY = ("The database is read-only at the moment; retry later.", 60)
    STORAGE = ("The database cannot read or write its storage; retry later.", 60)

    def __init__(self, detail: str, retry_after: int) -> None:
        self.detail = detail
        self.retry_after = retry_after


# SQLite result codes (primary name, as in sqlite3.Error.sqlite_errorname) that mean the file
# cannot serve now. SQLITE_ERROR (no such table, a syntax error), SQLITE_CONSTRAINT,
# SQLITE_MISMATCH, SQLITE_CORRUPT ... are ours or need an operator: they stay 500.
_SQLITE_UNAVAILABLE = {
    "SQLITE_BUSY": Unavailable.BUSY,  # "database is locked" after the busy timeout
    "SQLITE_LOCKED": Unavailable.BUSY,
    "SQLITE_PROTOCOL": Unavailable.BUSY,
    "SQLITE_NOMEM": Unavailable.BUSY,
    "SQLITE_FULL": Unavailable.FULL,  # "database or disk is full"
    "SQLITE_READONLY": Unavailable.READ_ONLY,  # "attempt to write a readonly database"
    "SQLITE_IOERR": Unavailable.STORAGE,  # "disk I/O error"
    "SQLITE_CANTOPEN": Unavailable.STORAGE,  # "unable to open database file"
}

# PostgreSQL SQLSTATEs (exact, then by class) that mean the server cannot serve now. Syntax
# (42), data (22), integrity (23) and internal (XX) errors stay 500.
_PG_UNAVAILABLE = {
    "57P01": Unavailable.UNREACHABLE,  # admin_shutdown: the server is stopping or restarting
    "57P02": Unavailable.UNREACHABLE,  # crash_shutdown
    "57P03": Unavailable.UNREACHABLE,  # cannot_connect_now: starting up, shutting down
    "53100": Unavailable.FULL,  # disk_full
    "53200": Unavailable.BUSY,  # out_of_memory
    "53300": Unavailable.BUSY,  # too_many_connections
    "25006": Unavailable.READ_ONLY,  # read_only_sql_transaction: a standby after failover
    "40001": Unavailable.BUSY,  # serialization_failure
    "40P01": Unavailable.BUSY,  # deadlock_detected
    "55P03": Unavailable.BUSY,  # lock_not_available
    "57014": Unavailable.BUSY,  # query_canceled: statement timeout
}
_PG_UNAVAILABLE_CLASSES = {
    "08": Unavailable.UNREACHABLE,  # connection exception
    "58": Unavailable.STORAGE,  # system error: I/O error, file missing
}


def database_unavailable(exc: BaseException) -> Unavailable | None:
    """Whether ``exc`` means the database cannot serve now (restarting, unreachable, locked, full,
    read-only), rather than a fault in our code; ``None`` for the latter."""
    if isinstance(exc, SqlalchemyTimeout):
        return Unavailable.BUSY  # no pooled connection came free in time
    if not isinstance(exc, DBAPIError):
        return None
    if exc.connection_invalidated:
        return Unavailable.UNREACHABLE  # SQLAlchemy recognised a disconnect
    orig = exc.orig
    sqlite_name = getattr(orig, "sqlite_errorname", None)
    if isinstance(sqlite_name, str):
        # Extended codes add a suffix: SQLITE_READONLY_DIRECTORY, SQLITE_IOERR_WRITE, ...
        primary = "_".join(sqlite_name.split("_")[:2])
        return _SQLITE_UNAVAILABLE.get(primary)
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return _PG_UNAVAILABLE.get(sqlstate) or _PG_UNAVAILABLE_CLASSES.get(sqlstate[:2])
    if isinstance(exc, OperationalError):
        # psycopg raises OperationalError without a SQLSTATE when no server answered at all:
        # connection refused, reset, closed unexpectedly.
        return Unavailable.UNREACHABLE
    return None


def driver_message(exc: BaseException) -> str:
    """The driver's own first line ("database or disk is full"), never SQLAlchemy's rendering,
    which would carry the statement's parameters (addresses) into the log."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    code = getattr(orig, "sqlite_errorname", None) or getattr(orig, "sqlstate", None)
    first_line = (str(orig).strip().splitlines() or [""])[0][:300]
    return f"{type(orig).__name__} {code or '-'}: {first_line}"


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


def validation_detail(errors: list[Any]) -> str:
    return "; ".join(f"{_location(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors)


def allowed_methods(request: Request) -> str:
    """Every method some route of the app takes at this path, for a 405's ``Allow`` header
    (RFC 9110). Starlette names only the methods of the first route whose path matched, and
    GET /senders and POST /senders are two routes."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _child = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


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
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI's answer to a JSON body that is not UTF-8; not JSON at all is a 422
            # ValidationError (docs/reference.md), and so is this.
            errors = [{"loc": ["body"], "msg": "not valid JSON: not UTF-8", "type": "json_invalid"}]
            return JSONResponse(
                {
                    "error": "ValidationError",
                    "detail": "body: not valid JSON: the bytes are not UTF-8.",
                    "errors": errors,
                },
                status_code=422,
            )
        names = {404: "NotFound", 405: "MethodNotAllowed", 400: "BadRequest", 413: "TooLarge"}
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return JSONResponse(
            {"error": names.get(exc.status_code, "HTTPError"), "detail": str(exc.detail)},
            status_code=exc.status_code,
            headers=headers or None,
        )

    @app.exception_handler(DBAPIError)
    @app.exception_handler(SqlalchemyTimeout)
    async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
        # The unit of work has rolled back by now (SessionDep). Only a database that cannot
        # serve becomes a 503; an error in our own SQL stays a 500 with its traceback.
        cause = database_unavailable(exc)
        if cause is None:
            raise exc
        log.warning("database unavailable (%s): %s", cause.name.lower(), driver_message(exc))
        return JSONResponse(
            ServiceUnavailable(cause.detail).body(),
            status_code=ServiceUnavailable.status_code,
            headers={"Retry-After": str(cause.retry_after)},
        )
