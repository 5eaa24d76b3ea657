"""Fixtures of the proof and security tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import BASE_URL


@pytest.fixture
async def reader(app: Any, read_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the admin API with a read-only key."""
    transport = httpx.ASGITransport(app=app, client=("198.51.100.3", 40001))
    async with httpx.AsyncClient(
        transport=transport,
        base_url=f"{BASE_URL}/api/v1",
        headers={"Authorization": f"Bearer {read_key}"},
    ) as c:
        yield c
