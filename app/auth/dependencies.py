"""Bearer-key dependencies: no key or a bad key is 401, a read key on a write is 403."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import DBAPIError

from app.auth.service import Principal, authenticate, record_use
from app.errors import Forbidden, Unauthorized
from app.models.enums import ApiKeyScope

log = logging.getLogger(__name__)


async def _principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("An API key is required: Authorization: Bearer <key>.")
    # A short-lived session of its own: authentication must not share the request's unit of work.
    async with request.app.state.sessionmaker() as session:
        async with session.begin():
            found = await authenticate(session, key.strip())
        if found is None:
            raise Unauthorized("The API key is not valid, has expired or has been revoked.")
        principal = found.principal
        if found.record_use_at is not None:
            # Best effort, in a transaction of its own: a database that cannot take the write
            # now (read-only, locked) must not turn a read into an error.
            try:
                async with session.begin():
                    await record_use(session, principal.api_key_id, found.record_use_at)
            except DBAPIError as exc:
                log.warning(
                    "last use of API key %s not recorded: %s",
                    principal.api_key_id,
                    type(exc).__name__,
                )
    request.state.principal = principal
    return principal


async def require_read(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    return principal


async def require_admin(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    if principal.scope is not ApiKeyScope.ADMIN:
        raise Forbidden("This API key may only read; writes need an admin key.")
    return principal


ReadKey = Annotated[Principal, Depends(require_read)]
AdminKey = Annotated[Principal, Depends(require_admin)]
