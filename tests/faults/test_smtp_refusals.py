"""Issue 5, Faults: the SMTP server answers 421/451 for a share of recipients (transiently, then
accepts) and 550 at RCPT for others. The first are retried to success; the second fail, and as
unknown users their addresses are suppressed (SG-4, reason hard_bounce), so no later campaign
mails them. The campaign's stats say exactly that.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.models import Suppression
from app.sending.runner import DeliveryRunner
from tests.factories import consent_many, make_world, start
from tests.faults.scripted_smtp import ScriptedSmtpServer
from tests.faults.sending import (
    fast_forward_backoff,
    ledger,
    mailbox_counts,
    send_until_finished,
)

SERVICE_CLOSING = "421 4.3.2 Service shutting down, closing transmission channel"
TRY_LATER = "451 4.3.0 Temporary local problem, try again later"
NO_SUCH_USER = "550 5.1.1 No such user here"


async def test_transient_refusals_retry_to_success_and_unknown_users_are_suppressed(
    admin: Any, runtime: Any, app: Any, smtp_server: ScriptedSmtpServer
) -> None:
    """Issue 5 / SG-4: 421 and 451 (at RCPT and at DATA) retry to success; 550 at RCPT fails and
    suppresses with reason hard_bounce; GET /campaigns/{id} counts match exactly."""
    world = await make_world(runtime)
    emails = await consent_many(runtime, world.list_id, 40)
    # The refused ones come first, so that connections a 421 closed are needed again after.
    closing_rcpt, later_rcpt, closing_data, later_data = (emails[i::8][:3] for i in range(4))
    unknown = emails[4::8][:4]
    for address in closing_rcpt:
        smtp_server.script("rcpt", address, SERVICE_CLOSING)
    for address in later_rcpt:
        smtp_server.script("rcpt", address, TRY_LATER, TRY_LATER)  # twice, then accepted
    for address in closing_data:
        smtp_server.script("data", address, SERVICE_CLOSING)
    for address in later_data:
        smtp_server.script("data", address, TRY_LATER)
    for address in unknown:
        smtp_server.behaviour.rcpt_replies[address] = NO_SUCH_USER
    transient = [*closing_rcpt, *later_rcpt, *closing_data, *later_data]
    fine = [e for e in emails if e not in transient and e not in unknown]

    campaign = await start(admin, world)
    campaign_id = campaign["id"]
    sender = DeliveryRunner(runtime, app.state.transport, worker_id="refusals-worker")

    # First pass: everything is tried once.
    await sender.drain(campaign_id)
    stats = (await admin.get(f"/campaigns/{campaign_id}")).json()["stats"]
    assert stats["total"] == 40
    assert stats["sent"] == len(fine), stats
    assert stats["failed"] == len(unknown)
    assert stats["queued"] == len(transient)
    assert stats["sending"] == stats["skipped_suppressed"] == stats["cancelled"] == 0
    assert smtp_server.replies_given[("rcpt", "421")] == len(closing_rcpt)
    assert smtp_server.replies_given[("data", "421")] == len(closing_data)

    # A 421 closes its connection: the sender continues on a fresh one instead of failing the
    # next recipient on the dead one. Every recipient nobody refused went out at the first try.
    by_email = await _deliveries(admin, campaign_id)
    assert {e: by_email[e]["attempts"] for e in fine} == dict.fromkeys(fine, 1)
    assert all(by_email[e]["status"] == "sent" for e in fine)
    assert smtp_server.connections > runtime.settings.send_concurrency

    # Retries, as the backoff elapses, until the campaign is done.
    async def backoff_elapsed() -> None:
        await fast_forward_backoff(runtime, campaign_id)

    await send_until_finished(runtime, sender, campaign_id, seconds=60, between=backoff_elapsed)

    body = (await admin.get(f"/campaigns/{campaign_id}")).json()
    assert body["status"] == "sent"
    assert body["stats"] == {
        "total": 40,
        "queued": 0,
        "sending": 0,
        "sent": 40 - len(unknown),
        "failed": len(unknown),
        "skipped_no_consent": 0,
        "skipped_suppressed": 0,
        "cancelled": 0,
        # Each refusal at RCPT is a hard bounce of its delivery (SG-4).
        "hard_bounces": len(unknown),
        "soft_bounces": 0,
        "complaints": 0,
        "complaint_rate": 0.0,
        "complaint_rate_flagged": False,
    }
    assert dict(await ledger(runtime, campaign_id)) == {
        "sent": 40 - len(unknown),
        "failed": len(unknown),
    }
    counts = mailbox_counts(smtp_server)
    assert counts == dict.fromkeys([*fine, *transient], 1), "lost, or mailed twice"
    by_email = await _deliveries(admin, campaign_id)
    for address in transient:
        row = by_email[address]
        assert row["status"] == "sent", row
        assert row["smtp_response"].startswith("250"), row
    assert {by_email[e]["attempts"] for e in later_rcpt} == {3}
    assert {by_email[e]["attempts"] for e in [*closing_rcpt, *closing_data, *later_data]} == {2}
    for address in unknown:
        row = by_email[address]
        assert (row["status"], row["attempts"]) == ("failed", 1), row
        assert row["smtp_response"].startswith("550"), row

    # Suppressed for good as hard bounces (SG-4); nobody else is.
    hasher = await runtime.hasher()
    async with runtime.sessionmaker() as session:
        reasons = dict(
            (await session.execute(select(Suppression.address_hash, Suppression.reason))).all()
        )
    assert reasons == {hasher(e): "hard_bounce" for e in unknown}
    for address in unknown:
        suppression = (await admin.get("/suppressions", params={"email": address})).json()
        assert "hard_bounce" in str(suppression), suppression

    # The next campaign to the same list leaves the unknown users out.
    smtp_server.received.clear()
    again = await start(admin, world)
    await send_until_finished(runtime, sender, again["id"], seconds=60)
    assert sorted(mailbox_counts(smtp_server)) == sorted([*fine, *transient])
    assert (await admin.get(f"/campaigns/{again['id']}")).json()["stats"]["total"] == 36


async def _deliveries(admin: Any, campaign_id: int) -> dict[str, dict[str, Any]]:
    response = await admin.get(f"/campaigns/{campaign_id}/deliveries")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("next_cursor") in (None, ""), "more than one page of deliveries"
    return {row["email"]: row for row in body["items"]}
