"""CR-3 at scale: the compliance report of a large campaign streams through the real endpoint in
bounded memory (keyset batches, short sessions). The default suite proves it on 20,000
recipients in batches of 200; ``make soak`` on 100,000 in the real batches of 1,000."""

from __future__ import annotations

import asyncio
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert

from app.campaigns import compliance_report
from app.models import ConsentEvent, Delivery, Subscriber
from tests.factories import make_world


async def fill_campaign(runtime: Any, admin: Any, recipients: int) -> int:
    """A sent campaign of ``recipients`` deliveries, each relying on its own consent event.

    Written with bulk INSERTs to keep the test quick: these events bypass the ledger's hash
    chain, which is not what this test is about (the application itself never does this)."""
    world = await make_world(runtime)
    created = await admin.post(
        "/campaigns",
        json={"name": "大量配信", "list_id": world.list_id, "template_id": world.template_id},
    )
    campaign_id: int = created.json()["id"]
    now = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    evidence = {"received_on": "2026-10-01", "received_by": "営業部 田中", "document_ref": "名刺"}
    async with runtime.sessionmaker() as session, session.begin():
        for start in range(1, recipients + 1, 10_000):
            ids = range(start, min(start + 10_000, recipients + 1))
            await session.execute(
                insert(Subscriber),
                [
                    {
                        "id": i,
                        "email": f"user{i:06d}@example.jp",
                        "address_hash": f"{i:064x}",
                        "attributes": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in ids
                ],
            )
            await session.execute(
                insert(ConsentEvent),
                [
                    {
                        "id": i,
                        "kind": "grant",
                        "email": f"user{i:06d}@example.jp",
                        "subscriber_id": i,
                        "sender_id": world.sender_id,
                        "list_id": world.list_id,
                        "basis": "written_notice",
                        "method": "business_card",
                        "occurred_at": now,
                        "obtained_at": now,
                        "evidence": evidence,
                        "recorded_by": "import:1",
                        "created_at": now,
                    }
                    for i in ids
                ],
            )
            await session.execute(
                insert(Delivery),
                [
                    {
                        "campaign_id": campaign_id,
                        "subscriber_id": i,
                        "status": "sent",
                        "consent_event_id": i,
                        "attempts": 1,
                        "sent_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in ids
                ],
            )
    return campaign_id


async def stream_through_app(app: Any, path: str, query: str, key: str) -> tuple[int, int, bytes]:
    """Run one GET through the ASGI app and count the body as it streams, keeping nothing:
    the test's own buffers must not be what is measured. Returns (status, bytes, last bytes)."""
    done = asyncio.Event()
    status = 0
    size = 0
    tail = b""

    async def receive() -> dict[str, Any]:
        if not hasattr(receive, "sent"):
            receive.sent = True  # type: ignore[attr-defined]
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, size, tail
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            size += len(body)
            if body:
                tail = (tail + body)[-300:]
            if not message.get("more_body", False):
                done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"news.example.test"),
            (b"authorization", f"Bearer {key}".encode()),
        ],
        "client": ("198.51.100.2", 40000),
        "server": ("news.example.test", 443),
        "state": {},
    }
    await app(scope, receive, send)
    return status, size, tail


@pytest.mark.parametrize(
    ("recipients", "batch", "peak_limit"),
    [
        # Measured: about 6 MB whatever the size (one batch of 1,000 rows and its CSV text).
        pytest.param(100_000, 1000, 15_000_000, marks=pytest.mark.soak, id="100000"),
        # A fifth of the rows in batches a fifth the size: the same proof, a tenth of the time.
        pytest.param(20_000, 200, 3_000_000, id="20000"),
    ],
)
async def test_cr3_report_of_a_large_campaign_streams_in_bounded_memory(
    app, admin, admin_key, runtime, monkeypatch, recipients, batch, peak_limit
):
    monkeypatch.setattr(compliance_report, "REPORT_BATCH", batch)
    campaign_id = await fill_campaign(runtime, admin, recipients)

    tracemalloc.start()
    try:
        status, size, tail = await stream_through_app(
            app, f"/api/v1/campaigns/{campaign_id}/compliance-report", "format=csv", admin_key
        )
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert status == 200
    assert (
        tail.decode().splitlines()[-1].startswith(f"{recipients},user{recipients:06d}@example.jp")
    )
    # The whole report is over 200 bytes a row; what is held at any moment is one batch.
    assert size > 200 * recipients
    assert peak < peak_limit, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB report"
