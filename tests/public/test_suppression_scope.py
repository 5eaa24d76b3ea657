"""OO-6: a suppression lifts only as far as the person's own new consent reaches.

The two attacks of issue #10, end to end: through the public signup, confirm and unsubscribe
endpoints, the admin API, and real campaigns sent to a real SMTP server. A person's confirmed
opt-in on one list makes them mailable on that list and nowhere else; a stranger's signup to
another list (of the same sender, or of another one) must not make the address mailable, and no
campaign mail reaches it there.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from app.models import OutboxMessage
from app.sending.runner import DeliveryRunner
from tests.public.conftest import JSON_WORDING, confirm_url_in, json_signup
from tests.smtp import SmtpServer

PERSON = "hanako@example.jp"
OTHER = "taro@example.jp"
TEMPLATE = "<p>今月のお知らせです。</p>"


async def _sender(admin: httpx.AsyncClient, name: str, domain: str) -> int:
    created = await admin.post(
        "/senders",
        json={
            "name": name,
            "postal_address": "〒100-0001 東京都千代田区千代田1-1",
            "contact_email": f"support@{domain}",
            "from_email": f"news@{domain}",
        },
    )
    assert created.status_code == 201, created.text
    sender_id: int = created.json()["id"]
    return sender_id


async def _list(admin: httpx.AsyncClient, sender_id: int, slug: str, *, double_opt_in: bool) -> int:
    created = await admin.post(
        "/lists",
        json={
            "name": slug,
            "slug": slug,
            "sender_id": sender_id,
            "purpose": "新商品とセールのご案内をお送りするため",
            "double_opt_in": double_opt_in,
            "language": "ja",
        },
    )
    assert created.status_code == 201, created.text
    list_id: int = created.json()["id"]
    if not double_opt_in:
        # A single opt-in list takes only registered wordings from JSON signups (CR-1).
        registered = await admin.post(
            f"/lists/{list_id}/consent-texts", json={"text": JSON_WORDING}
        )
        assert registered.status_code == 201, registered.text
    return list_id


async def _send(
    admin: httpx.AsyncClient, app: Any, smtp_server: SmtpServer, list_id: int, subject: str
) -> list[str]:
    """Send a campaign on the list to the end; return who received it."""
    template = await admin.post(
        "/templates", json={"name": subject, "subject": subject, "html": TEMPLATE}
    )
    assert template.status_code == 201, template.text
    campaign = await admin.post(
        "/campaigns",
        json={"name": subject, "list_id": list_id, "template_id": template.json()["id"]},
    )
    assert campaign.status_code == 201, campaign.text
    started = await admin.post(f"/campaigns/{campaign.json()['id']}/send")
    assert started.status_code == 202, started.text
    report = await DeliveryRunner(app.state.runtime, app.state.transport).drain(
        campaign.json()["id"]
    )
    assert report.finished
    return sorted(
        rcpt
        for received in smtp_server.received
        if received.message["Subject"] == subject
        for rcpt in received.rcpt_tos
    )


async def _a_day_later(app: Any) -> None:
    """A day passes for OO-7's one confirmation mail a day to a suppressed address: every mail
    queued so far dates from two days ago. The stranger's signup is then decided by the scope
    rule alone (OO-6), not held back by the daily limit."""
    async with app.state.runtime.sessionmaker() as session, session.begin():
        for row in (await session.scalars(select(OutboxMessage))).all():
            row.created_at = row.created_at - timedelta(days=2)


async def _gate(admin: httpx.AsyncClient, email: str) -> dict[int, tuple[str, str]]:
    """The person's subscriptions as the admin API shows them: list id -> (status, gate)."""
    [person] = (await admin.get("/subscribers", params={"email": email})).json()["items"]
    return {s["list_id"]: (s["status"], s["gate"]) for s in person["subscriptions"]}


async def _confirm_latest(
    client: httpx.AsyncClient, smtp_server: SmtpServer, outbox: Any, email: str
) -> None:
    """The person opens the confirmation mail that just reached them and presses the button."""
    before = len(smtp_server.messages_to(email))
    await outbox()
    mails = smtp_server.messages_to(email)
    assert len(mails) == before + 1, "a confirmation mail reached the person"
    confirmed = await client.post(confirm_url_in(mails[-1]))
    assert confirmed.status_code == 200, confirmed.text


async def test_oo6_confirming_one_list_does_not_reopen_the_senders_other_lists(
    admin: httpx.AsyncClient,
    app: Any,
    client: httpx.AsyncClient,
    smtp_server: SmtpServer,
    outbox: Any,
) -> None:
    """OO-6, OO-5, CC-3, SG-1 (issue #10, first attack): the person opts out of everything from
    the shop by the link in a mail; later signs up again on the shop's double opt-in list and
    confirms. A stranger then signs the address up to the shop's single opt-in list: the answer
    is the usual one, but the address stays suppressed there and the next campaign on that list
    does not reach it, while the list the person confirmed does."""
    shop = await _sender(admin, "株式会社承諾商事", "shop.example")
    news = await _list(admin, shop, "news", double_opt_in=True)
    flash = await _list(admin, shop, "flash", double_opt_in=False)

    assert (await json_signup(client, "flash", PERSON)).status_code == 200
    assert (await json_signup(client, "flash", OTHER)).status_code == 200
    assert await _send(admin, app, smtp_server, flash, "flash 1") == [PERSON, OTHER]
    [mail] = [m for m in smtp_server.messages_to(PERSON) if m.message["Subject"] == "flash 1"]
    one_click = mail.message["List-Unsubscribe"].strip("<>")
    # RFC 8058 one-click: the default scope, every list of the sender (OO-5).
    optout = await client.post(one_click, data={"List-Unsubscribe": "One-Click"})
    assert optout.status_code == 200

    # The person comes back, to the newsletter only, and confirms it themself.
    assert (await json_signup(client, "news", PERSON)).status_code == 202
    await _confirm_latest(client, smtp_server, outbox, PERSON)
    assert await _gate(admin, PERSON) == {
        flash: ("unsubscribed", "suppressed"),
        news: ("active", "mailable"),
    }

    # A day later, a stranger signs the address up to the single opt-in list: the same answer
    # as ever.
    await _a_day_later(app)
    stranger = await json_signup(client, "flash", PERSON)
    assert stranger.status_code == 200
    assert stranger.json()["status"] == "subscribed"
    assert await _gate(admin, PERSON) == {
        flash: ("pending", "suppressed"),
        news: ("active", "mailable"),
    }
    # Nor can an operator record consent for it there (OO-6).
    refused = await admin.post(
        f"/lists/{flash}/consents",
        json={
            "email": PERSON,
            "basis": "written_notice",
            "method": "business_card",
            "obtained_at": "2026-10-01T00:00:00+09:00",
            "evidence": {
                "received_on": "2026-10-01",
                "received_by": "営業部 田中",
                "document_ref": "card-0001",
            },
        },
    )
    assert refused.status_code == 409
    assert refused.json()["error"] == "AddressSuppressed"

    assert await _send(admin, app, smtp_server, flash, "flash 2") == [OTHER]
    assert await _send(admin, app, smtp_server, news, "news 1") == [PERSON]

    status = (await admin.get("/suppressions", params={"email": PERSON})).json()
    assert status["suppressed"] is True
    [sender_wide] = status["suppressions"]
    assert (sender_wide["scope"], sender_wide["sender_id"]) == ("sender", shop)
    assert [lift["list_id"] for lift in sender_wide["lifted_for"]] == [news]


async def test_oo6_ds3_confirming_a_list_of_one_sender_does_not_undo_an_erasure_for_another(
    admin: httpx.AsyncClient,
    app: Any,
    client: httpx.AsyncClient,
    smtp_server: SmtpServer,
    outbox: Any,
) -> None:
    """OO-6, DS-3, SG-1 (issue #10, second attack): the person is erased (a suppression of
    every sender stays, as a keyed hash). Later they sign up on sender B's list and confirm it.
    A stranger then signs the address up to sender A's single opt-in list: it stays suppressed
    there, and A's campaign does not reach it, while B's does."""
    a = await _sender(admin, "株式会社承諾商事", "shop.example")
    b = await _sender(admin, "株式会社別会社", "other.example")
    a_flash = await _list(admin, a, "a-flash", double_opt_in=False)
    b_news = await _list(admin, b, "b-news", double_opt_in=True)

    assert (await json_signup(client, "a-flash", PERSON)).status_code == 200
    assert (await json_signup(client, "a-flash", OTHER)).status_code == 200
    [person] = (await admin.get("/subscribers", params={"email": PERSON})).json()["items"]
    assert (await admin.delete(f"/subscribers/{person['id']}")).status_code == 200

    # The person comes back, to sender B's newsletter, and confirms it themself.
    assert (await json_signup(client, "b-news", PERSON)).status_code == 202
    await _confirm_latest(client, smtp_server, outbox, PERSON)
    assert await _gate(admin, PERSON) == {b_news: ("active", "mailable")}

    # A day later, a stranger signs the address up to sender A's single opt-in list.
    await _a_day_later(app)
    stranger = await json_signup(client, "a-flash", PERSON)
    assert stranger.status_code == 200
    assert await _gate(admin, PERSON) == {
        a_flash: ("pending", "suppressed"),
        b_news: ("active", "mailable"),
    }

    assert await _send(admin, app, smtp_server, a_flash, "a flash") == [OTHER]
    assert await _send(admin, app, smtp_server, b_news, "b news") == [PERSON]

    status = (await admin.get("/suppressions", params={"email": PERSON})).json()
    assert status["suppressed"] is True
    [erasure] = status["suppressions"]
    assert (erasure["scope"], erasure["reason"]) == ("global", "erasure")
    assert [lift["list_id"] for lift in erasure["lifted_for"]] == [b_news]


async def test_oo6_a_list_only_optout_is_lifted_by_confirming_that_list_again(
    admin: httpx.AsyncClient,
    app: Any,
    client: httpx.AsyncClient,
    smtp_server: SmtpServer,
    outbox: Any,
) -> None:
    """OO-5, OO-6: what was right stays right. A person who left one list only, by the page
    behind the link, comes back to it by their own confirmed signup and gets its mail again;
    GET /suppressions then says nothing blocks the address. A later opt-out suppresses again."""
    shop = await _sender(admin, "株式会社承諾商事", "shop.example")
    flash = await _list(admin, shop, "flash", double_opt_in=False)

    assert (await json_signup(client, "flash", PERSON)).status_code == 200
    assert (await json_signup(client, "flash", OTHER)).status_code == 200
    assert await _send(admin, app, smtp_server, flash, "flash 1") == [PERSON, OTHER]
    [mail] = smtp_server.messages_to(PERSON)
    page_url = mail.message["List-Unsubscribe"].strip("<>")
    assert (await client.post(page_url, data={"scope": "list"})).status_code == 200
    assert await _gate(admin, PERSON) == {flash: ("unsubscribed", "suppressed")}

    # Signing up again on the single opt-in list needs the person's confirmation (OO-6).
    assert (await json_signup(client, "flash", PERSON)).status_code == 200
    await _confirm_latest(client, smtp_server, outbox, PERSON)
    assert await _gate(admin, PERSON) == {flash: ("active", "mailable")}
    status = (await admin.get("/suppressions", params={"email": PERSON})).json()
    assert status["suppressed"] is False
    assert [s["scope"] for s in status["suppressions"]] == ["list"]
    assert await _send(admin, app, smtp_server, flash, "flash 2") == [PERSON, OTHER]

    # The same link again: the list-only suppression blocks the list again.
    assert (await client.post(page_url, data={"scope": "list"})).status_code == 200
    assert await _gate(admin, PERSON) == {flash: ("unsubscribed", "suppressed")}
    assert (await admin.get("/suppressions", params={"email": PERSON})).json()["suppressed"]
    assert await _send(admin, app, smtp_server, flash, "flash 3") == [OTHER]
