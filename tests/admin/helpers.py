"""Helpers of the admin API tests: a client with a given key, a key created through the API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import BASE_URL


def api(app: Any, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("198.51.100.9", 40009)),
        base_url=f"{BASE_URL}/api/v1",
        headers={"Authorization": f"Bearer {key}"},
    )


async def create_key(admin: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await admin.post("/api-keys", json={"name": "ops", **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
