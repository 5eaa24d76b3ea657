"""Bearer-key dependencies: no key or a bad key is 401, a read key on a write is 403."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.auth.service import Principal, authenticate
from app.errors import Forbidden, Unauthorized
from app.models.enums import ApiKeyScope


async def _principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("An API key is required: Authorization: Bearer <key>.")
    # A short-lived session of its own: authentication must not share the request's unit of work.
    async with request.app.state.sessionmaker() as session, session.begin():
        principal = await authenticate(session, key.strip())
    if principal is None:
        raise Unauthorized("The API key is not valid, has expired or has been revoked.")
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
