"""DS-6: the logs of a whole run (the operator's CLI, uvicorn, the application, SQLAlchemy) hold no
unsubscribe or confirm token, no API key and no full address.

One run through the real parts: an API key created by ``shodaku apikey create``, the app served
by uvicorn as ``shodaku serve`` serves it (its own access log off, ours on), a signup whose
confirmation mail goes through a real SMTP server (aiosmtpd), the confirmation, consent recorded
by the admin API, a campaign sent by ``DeliveryRunner`` with one recipient refused by the server
in the words real servers use (they quote the address), a one-click unsubscribe, an opt-out by
the admin API, the exports. Every log record of the process is captured at DEBUG, and then
searched for every secret and every address the run used.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app.config import Settings
from app.main import create_app
from app.sending.runner import DeliveryRunner
from tests.conftest import deliver_outbox, wait_for
from tests.smtp import SmtpServer, free_port

ROOT = Path(__file__).resolve().parents[1]
SHODAKU = Path(sys.executable).parent / "shodaku"
if not SHODAKU.exists():  # pragma: no cover - a test run outside the project's venv
    SHODAKU = ROOT / ".venv" / "bin" / "shodaku"

WORDING = "承諾ニュース（広告を含みます）を株式会社承諾から受け取ることに同意します。"
SUBSCRIBER_ADDRESSES = [
    "hanako.yamada@example.jp",  # signs up on the web and confirms
    "taro.suzuki@example.jp",  # recorded from a business card, unsubscribes with one click
    "jiro.sato@example.jp",  # recorded, then phones to opt out
    "saburo.ito@example.jp",  # recorded; the SMTP server refuses the address
    "Shiro.Kato@Example.JP",  # signs up with capitals (stored normalised)
]
# Loggers of the test's own tools, not of Shodaku: the SMTP server standing in for the
# recipients' provider (aiosmtpd logs every RCPT) and the HTTP client playing the browser.
NOT_SHODAKU = ("mail.log", "httpx", "httpcore")


class Capture(logging.Handler):
    """Every record, formatted as an operator would see it, traceback included."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(NOT_SHODAKU):
            return
        self.lines.append(self.format(record))


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    # Root at DEBUG: every library's debug output too. SQLAlchemy's engine at INFO, as
    # ``echo=True`` sets it: every statement (its DEBUG adds result rows, a developer's
    # debugging aid on their own database, not a production setting).
    levels = {
        name: logging.getLogger(name).level
        for name in ("", "sqlalchemy.engine", "sqlalchemy.pool", "uvicorn", "uvicorn.error")
    }
    root.setLevel(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    logging.getLogger("sqlalchemy.pool").setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def create_key_with_the_cli(database_url: str, cwd: Path, capture: Capture) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHODAKU_")}
    env.update(SHODAKU_ENV="dev", SHODAKU_DATABASE_URL=database_url)
    result = subprocess.run(
        [str(SHODAKU), "apikey", "create", "--name", "ops"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    capture.lines += result.stderr.splitlines()  # the command's own log and messages
    return result.stdout.splitlines()[-1]


def text_part(raw: Any) -> str:
    part = raw.message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


async def test_ds6_no_token_key_or_address_reaches_any_log_in_a_full_run(
    settings: Settings, smtp_server: SmtpServer, tmp_path: Path, capture: Capture
) -> None:
    key = create_key_with_the_cli(settings.database_url, tmp_path, capture)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    live = settings.model_copy(update={"base_url": base})
    app = create_app(live, run_outbox=False, run_sender=False)
    # As ``shodaku serve`` runs it: uvicorn's access log off (it prints raw paths).
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="on", log_level="debug", access_log=False
    )
    # uvicorn's loggers do not propagate to the root: listen to them directly.
    for name in ("uvicorn", "uvicorn.access"):
        logging.getLogger(name).addHandler(capture)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    tokens: list[str] = []
    try:
        await wait_for(lambda: server.started or serving.done())
        assert not serving.done()
        runtime = app.state.runtime
        async with (
            httpx.AsyncClient(base_url=base) as public,
            httpx.AsyncClient(
                base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {key}"}
            ) as admin,
        ):
            sender = await admin.post(
                "/senders",
                json={
                    "name": "株式会社承諾",
                    "postal_address": "〒100-0001 東京都千代田区千代田1-1",
                    "contact_email": "support@shodaku.example",
                    "from_email": "news@shodaku.example",
                },
            )
            assert sender.status_code == 201, sender.text
            news = await admin.post(
                "/lists",
                json={
                    "name": "承諾ニュース",
                    "slug": "news",
                    "sender_id": sender.json()["id"],
                    "purpose": "新製品のお知らせ",
                },
            )
            list_id = news.json()["id"]
            template = await admin.post(
                "/templates",
                json={"name": "月刊", "subject": "12月号", "html": "<p>{{ name or '皆様' }}</p>"},
            )

            # Signups through the public door; a repeat and a bad address on the way.
            hanako, taro, jiro, saburo, shiro = SUBSCRIBER_ADDRESSES
            for email in (hanako, shiro, hanako):
                signup = await public.post(
                    "/subscribe/news",
                    json={"email": email, "consent": True, "consent_text": WORDING},
                )
                assert signup.status_code == 202, signup.text
            refused = await public.post(
                "/subscribe/news",
                json={"email": "not an address@", "consent": True, "consent_text": WORDING},
            )
            assert refused.status_code == 422

            # The confirmation mail through the real SMTP server, and the confirmation.
            await deliver_outbox(app)
            [mail] = smtp_server.messages_to(hanako)
            found = re.search(r"/confirm/([A-Za-z0-9_.\-]+)", text_part(mail))
            assert found is not None
            tokens.append(found.group(1))
            assert (await public.get(f"/confirm/{found.group(1)}")).status_code == 200
            assert (await public.post(f"/confirm/{found.group(1)}")).status_code == 200
            assert (await public.post("/confirm/forged.token.value")).status_code == 400

            # Consent recorded by the admin API, from business cards.
            for email in (taro, jiro, saburo):
                recorded = await admin.post(
                    f"/lists/{list_id}/consents",
                    json={
                        "email": email,
                        "basis": "written_notice",
                        "method": "business_card",
                        "obtained_at": "2026-10-01T10:00:00+09:00",
                        "evidence": {
                            "received_on": "2026-10-01",
                            "received_by": "営業部 田中",
                            "document_ref": "名刺 BC-0042",
                        },
                    },
                )
                assert recorded.status_code == 201, recorded.text
            assert (await admin.get("/subscribers", params={"email": taro})).status_code == 200
            assert (await admin.get("/suppressions", params={"email": jiro})).status_code == 200

            # A campaign, sent by the campaign sender; the provider refuses saburo, quoting him.
            smtp_server.behaviour.rcpt_replies[saburo] = (
                f"550 5.1.1 <{saburo}>: Recipient address rejected: User unknown"
            )
            campaign = await admin.post(
                "/campaigns",
                json={"name": "12月号", "list_id": list_id, "template_id": template.json()["id"]},
            )
            campaign_id = campaign.json()["id"]
            assert (await admin.post(f"/campaigns/{campaign_id}/send")).status_code == 202
            report = await DeliveryRunner(runtime, app.state.transport).drain(campaign_id)
            assert report.finished
            assert smtp_server.messages_to(taro)
            assert not smtp_server.messages_to(saburo)

            # One-click unsubscribe (RFC 8058) from the mail's header, and the page behind it.
            [campaign_mail] = smtp_server.messages_to(taro)
            header = str(campaign_mail.message["List-Unsubscribe"])
            one_click = re.search(r"/unsubscribe/([A-Za-z0-9_.\-]+)>", header)
            assert one_click is not None
            tokens.append(one_click.group(1))
            assert (await public.get(f"/unsubscribe/{one_click.group(1)}")).status_code == 200
            unsubscribed = await public.post(
                f"/unsubscribe/{one_click.group(1)}", data={"List-Unsubscribe": "One-Click"}
            )
            assert unsubscribed.status_code == 200

            # An opt-out by phone, through the admin API; then the exports.
            phoned = await admin.post("/optouts", json={"email": jiro, "channel": "phone"})
            assert phoned.status_code == 201
            for path in (
                "/consents/export",
                f"/consents/export?email={taro}&format=json",
                f"/campaigns/{campaign_id}/compliance-report",
            ):
                exported = await admin.get(path)
                assert exported.status_code == 200
                assert taro in exported.text  # the exports do hold the evidence; logs do not
            # A key that is wrong, in the header where scripts put it.
            bad = await admin.get("/senders", headers={"Authorization": f"Bearer {key}x"})
            assert bad.status_code == 401
    finally:
        server.should_exit = True
        await serving

    log = "\n".join(capture.lines)
    # The run was logged (so the search below searched something).
    assert "shodaku.access" in log
    assert "GET /unsubscribe/[token] 200" in log
    assert "POST /confirm/[token] 200" in log
    assert "sqlalchemy.engine" in log
    assert "uvicorn" in log

    secrets = {"API key": key, "API key (wrong)": f"{key}x"}
    secrets.update({f"token {i}": token for i, token in enumerate(tokens)})
    for what, secret in secrets.items():
        leaked = [line for line in capture.lines if secret in line]
        assert not leaked, f"the {what} is in the log: {leaked[:3]}"
    for address in [*SUBSCRIBER_ADDRESSES, "not an address@"]:
        for form in {address, address.lower()}:
            leaked = [line for line in capture.lines if form in line]
            assert not leaked, f"{form} is in the log: {leaked[:3]}"
    # Masked addresses are how the log names a person, when it must.
    assert "j***@example.jp" in log
