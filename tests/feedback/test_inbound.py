"""SG-4, OO-1, OO-7 end to end over real SMTP: a campaign goes out through aiosmtpd with a VERP
envelope sender and a mailto unsubscribe address; what comes back reaches the inbound listener;
the next campaign skips the address. A forged token changes nothing; a report twice is one
event."""

from __future__ import annotations

import logging
import re
from typing import Any

import aiosmtplib
import pytest
from sqlalchemy import select

from app.models import ConsentEvent, FeedbackEvent, Subscription, Suppression
from app.models.enums import SubscriptionStatus
from app.sending.runner import DeliveryRunner
from tests.factories import consent, make_world, start
from tests.feedback import corpus
from tests.feedback.conftest import BOUNCE_DOMAIN
from tests.smtp import SmtpServer

TARO = "taro@example.jp"
HANAKO = "hanako@example.jp"


async def send_campaign(admin: Any, app: Any, world: Any) -> None:
    started = await start(admin, world)
    report = await DeliveryRunner(app.state.runtime, app.state.transport).drain(started["id"])
    assert report.finished


async def reply_to_listener(app: Any, recipient: str, message: bytes) -> None:
    """What a mailbox provider does: a new SMTP transaction to the address on the message."""
    settings = app.state.settings
    client = aiosmtplib.SMTP(hostname=settings.inbound_host, port=settings.inbound_port)
    async with client:
        # A bounce's envelope sender is empty (RFC 5321 4.5.5): MAIL FROM:<>.
        await client.sendmail("", [recipient], message)


async def rows(runtime: Any, model: Any) -> list[Any]:
    async with runtime.sessionmaker() as session:
        return list((await session.scalars(select(model).order_by(model.id))).all())


def mailto_of(received: Any) -> str:
    header = received.message["List-Unsubscribe"]
    found = re.search(r"<mailto:([^>]+)>", str(header))
    assert found, header
    return found.group(1)


async def test_sg4_mh3_a_campaign_goes_out_with_a_verp_sender_and_a_mailto_after_the_url(
    admin, app, runtime, smtp_server: SmtpServer, inbound
):
    world = await make_world(runtime)
    await consent(runtime, world.list_id, TARO)
    await send_campaign(admin, app, world)
    [received] = smtp_server.messages_to(TARO)
    assert re.fullmatch(
        rf"bounce\+d[0-9a-z]+-[a-z2-7]{{16}}@{re.escape(BOUNCE_DOMAIN)}", received.mail_from
    ), received.mail_from
    assert len(received.mail_from.split("@")[0]) <= 64
    header = str(received.message["List-Unsubscribe"])
    # RFC 8058: the https URI first, which one-click posts to; then the mailto (RFC 2369).
    assert re.fullmatch(r"<https://[^>]+>, <mailto:unsubscribe\+[^>]+>", header), header
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_sg4_a_hard_bounce_by_dsn_suppresses_the_address_and_the_next_campaign_skips_it(
    admin, app, runtime, smtp_server: SmtpServer, inbound, caplog
):
    caplog.set_level(logging.DEBUG)
    world = await make_world(runtime)
    await consent(runtime, world.list_id, TARO)
    await consent(runtime, world.list_id, HANAKO)
    await send_campaign(admin, app, world)
    [to_taro] = smtp_server.messages_to(TARO)

    await reply_to_listener(app, to_taro.mail_from, corpus.dsn(to_taro.mail_from, recipient=TARO))
    # The same report again (a relay retrying): one event, nothing more.
    await reply_to_listener(app, to_taro.mail_from, corpus.dsn(to_taro.mail_from, recipient=TARO))

    [event] = await rows(runtime, FeedbackEvent)
    assert (event.kind, event.status, event.reporter) == (
        "hard_bounce",
        "5.1.1",
        "dns; mx.example.jp",
    )
    assert event.delivery_id is not None
    assert event.campaign_id is not None
    [suppression] = await rows(runtime, Suppression)
    assert (suppression.scope, suppression.reason) == ("global", "hard_bounce")
    assert inbound.counts["hard_bounce"] == 1
    assert inbound.counts["duplicate"] == 1

    await send_campaign(admin, app, world)
    assert len(smtp_server.messages_to(TARO)) == 1  # never mailed again
    assert len(smtp_server.messages_to(HANAKO)) == 2
    # DS-6: neither the address nor the token reached the log, at any level.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "bounce+" not in logged
    assert TARO not in logged


async def test_sg4_soft_bounces_count_and_the_third_within_the_window_suppresses(
    admin, app, runtime, smtp_server: SmtpServer, inbound
):
    world = await make_world(runtime)
    await consent(runtime, world.list_id, TARO)
    await consent(runtime, world.list_id, HANAKO)
    for n in range(3):
        await send_campaign(admin, app, world)
        received = smtp_server.messages_to(TARO)[-1]
        assert await rows(runtime, Suppression) == [], f"suppressed after {n} soft bounces"
        await reply_to_listener(
            app,
            received.mail_from,
            corpus.exim_dsn(received.mail_from).replace(
                b"E1exim-0001", f"E1exim-000{n + 2}".encode()
            ),
        )
    assert [e.kind for e in await rows(runtime, FeedbackEvent)] == ["soft_bounce"] * 3
    [suppression] = await rows(runtime, Suppression)
    assert suppression.reason == "soft_bounces"
    await send_campaign(admin, app, world)
    assert len(smtp_server.messages_to(TARO)) == 3
    assert len(smtp_server.messages_to(HANAKO)) == 4


async def test_sg5_oo1_a_complaint_is_a_refusal_recorded_in_the_ledger_and_stops_the_sender(
    admin, app, runtime, smtp_server: SmtpServer, inbound
):
    world = await make_world(runtime)
    await consent(runtime, world.list_id, TARO)
    await consent(runtime, world.list_id, HANAKO)
    await send_campaign(admin, app, world)
    [to_taro] = smtp_server.messages_to(TARO)

    await reply_to_listener(
        app,
        to_taro.mail_from,
        corpus.arf(to_taro.mail_from, original_return_path=to_taro.mail_from),
    )

    events = [e for e in await rows(runtime, ConsentEvent) if e.email == TARO]
    withdrawal = events[-1]
    assert (withdrawal.kind, withdrawal.method, withdrawal.scope) == (
        "withdraw",
        "complaint",
        "sender",
    )
    assert withdrawal.chain_hash is not None  # in the hash chain like every event (CR-3)
    [feedback] = await rows(runtime, FeedbackEvent)
    assert (feedback.kind, feedback.consent_event_id) == ("complaint", withdrawal.id)
    statuses = {s.subscriber_id: s.status for s in await rows(runtime, Subscription)}
    assert statuses[withdrawal.subscriber_id] == SubscriptionStatus.UNSUBSCRIBED
    assert sorted(statuses.values()) == [SubscriptionStatus.ACTIVE, SubscriptionStatus.UNSUBSCRIBED]
    [suppression] = await rows(runtime, Suppression)
    assert (suppression.scope, suppression.reason) == ("sender", "complaint")

    await send_campaign(admin, app, world)
    assert len(smtp_server.messages_to(TARO)) == 1
    assert len(smtp_server.messages_to(HANAKO)) == 2


async def test_oo8_oo7_a_refusal_mailed_to_the_unsubscribe_address_withdraws_and_mails_nothing(
    admin, app, runtime, smtp_server: SmtpServer, inbound
):
    world = await make_world(runtime)
    await consent(runtime, world.list_id, TARO)
    await consent(runtime, world.list_id, HANAKO)
    await send_campaign(admin, app, world)
    [to_taro] = smtp_server.messages_to(TARO)
    mailto = mailto_of(to_taro)

    await reply_to_listener(app, mailto, corpus.vacation(mailto))  # an auto-reply: ignored
    assert [e.kind for e in await rows(runtime, ConsentEvent) if e.email == TARO] == ["grant"]
    await reply_to_listener(app, mailto, corpus.refusal(mailto))

    withdrawal = [e for e in await rows(runtime, ConsentEvent) if e.email == TARO][-1]
    assert (withdrawal.kind, withdrawal.method, withdrawal.channel) == (
        "withdraw",
        "email",
        "email",
    )
    [feedback] = await rows(runtime, FeedbackEvent)
    assert feedback.kind == "refusal"
    await send_campaign(admin, app, world)
    # No answer by mail (OO-7), and no second campaign message.
    assert len(smtp_server.messages_to(TARO)) == 1
    assert len(smtp_server.messages_to(HANAKO)) == 2
    assert smtp_server.count() == 3


@pytest.mark.parametrize(
    "address",
    [
        "bounce+d1-aaaaaaaaaaaaaaaa@" + BOUNCE_DOMAIN,  # a forged token
        "postmaster@" + BOUNCE_DOMAIN,
        "bounce@" + BOUNCE_DOMAIN,
        "taro@example.jp",  # no relay
    ],
)
async def test_sg4_a_recipient_without_a_token_of_ours_is_refused_at_rcpt_and_changes_nothing(
    admin, app, runtime, smtp_server: SmtpServer, inbound, address
):
    world = await make_world(runtime)
    await consent(runtime, world.list_id, TARO)
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await reply_to_listener(app, address, corpus.dsn(address, recipient=TARO))
    assert refused.value.recipients[0].code == 550
    assert await rows(runtime, FeedbackEvent) == []
    assert await rows(runtime, Suppression) == []
    assert inbound.counts["unverified"] == 1


async def test_sg4_a_bounce_token_cannot_be_used_as_an_unsubscribe_token(
    admin, app, runtime, smtp_server: SmtpServer, inbound
):
    world = await make_world(runtime)
    await consent(runtime, world.list_id, TARO)
    await send_campaign(admin, app, world)
    [to_taro] = smtp_server.messages_to(TARO)
    swapped = to_taro.mail_from.replace("bounce+", "unsubscribe+")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await reply_to_listener(app, swapped, corpus.refusal(swapped))
    assert [e.kind for e in await rows(runtime, ConsentEvent)] == ["grant"]


async def test_sg4_sg5_the_campaign_counts_what_came_back_and_pauses_itself_past_0_3_percent(
    admin, app, runtime, smtp_server: SmtpServer, inbound
):
    world = await make_world(runtime)
    emails = [f"user{n}@example.jp" for n in range(6)]
    for address in emails:
        await consent(runtime, world.list_id, address)
    started = await start(admin, world)
    runner = DeliveryRunner(app.state.runtime, app.state.transport)
    # Two batches' worth out of three: the campaign is still sending when the reports come.
    report = await runner.drain(started["id"], max_batches=1)
    assert report.sent == 2
    first, second = (smtp_server.messages_to(a)[0] for a in emails if smtp_server.messages_to(a))
    await reply_to_listener(app, first.mail_from, corpus.dsn(first.mail_from))
    body = (await admin.get(f"/campaigns/{started['id']}")).json()
    assert body["status"] == "sending"
    assert body["stats"]["hard_bounces"] == 1
    assert body["stats"]["complaints"] == 0

    await reply_to_listener(
        app, second.mail_from, corpus.arf(second.mail_from, original_return_path=second.mail_from)
    )
    body = (await admin.get(f"/campaigns/{started['id']}")).json()
    assert body["status"] == "paused"  # 1 complaint in 2 sent: far past 0.3%
    assert body["stats"]["complaints"] == 1
    assert body["stats"]["complaint_rate"] == 0.5
    assert body["stats"]["complaint_rate_flagged"] is True
    assert (await runner.drain(started["id"])).sent == 0  # nothing more goes out
    assert smtp_server.count() == 2
    audit = (await admin.get("/audit")).json()["items"]
    assert any(
        e["action"] == "campaign.pause" and e["details"].get("reason") == "complaint_rate"
        for e in audit
    )


async def test_sg4_a_japanese_carrier_address_is_suppressed_after_two_soft_bounces(
    admin, app, runtime, smtp_server: SmtpServer, inbound
):
    """docomo, au, SoftBank and the like stop accepting a sender's mail after repeated errors:
    their addresses are suppressed after two soft bounces, not three."""
    carrier = "hanako.y@docomo.ne.jp"
    world = await make_world(runtime)
    await consent(runtime, world.list_id, carrier)
    await consent(runtime, world.list_id, TARO)
    for n in range(2):
        await send_campaign(admin, app, world)
        assert await rows(runtime, Suppression) == []
        received = smtp_server.messages_to(carrier)[-1]
        await reply_to_listener(
            app,
            received.mail_from,
            corpus.exim_dsn(received.mail_from).replace(b"E1exim-0001", f"E1exim-c{n}".encode()),
        )
    [suppression] = await rows(runtime, Suppression)
    assert suppression.reason == "soft_bounces"
    await send_campaign(admin, app, world)
    assert len(smtp_server.messages_to(carrier)) == 2
    assert len(smtp_server.messages_to(TARO)) == 3
