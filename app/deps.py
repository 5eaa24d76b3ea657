"""Request-scoped access to the process runtime, as FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.addresses import AddressHasher
from app.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_hasher(request: Request) -> AddressHasher:
    return await get_runtime(request).hasher()


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
HasherDep = Annotated[AddressHasher, Depends(get_hasher)]
