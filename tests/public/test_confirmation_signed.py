"""Every mail that leaves is signed when its From domain has a DKIM key: the confirmation mail
too, not only campaigns (MH-3), through the real outbox and a real SMTP server."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import dkim
import httpx
import pytest

from app.config import Settings
from app.runtime import Runtime
from tests.factories import make_list, make_sender
from tests.public.conftest import json_signup
from tests.smtp import SmtpServer

DOMAIN = "shodaku-shoji.example"


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    private = tmp_path_factory.mktemp("dkim") / "key.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-out", str(private)],
        check=True,
        capture_output=True,
    )
    der = subprocess.run(
        ["openssl", "pkey", "-in", str(private), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


@pytest.fixture
def settings(settings: Settings, key_pair: tuple[Path, bytes]) -> Settings:
    return settings.model_copy(update={"dkim_keys": f"{DOMAIN}:mail:{key_pair[0]}"})


async def test_mh3_confirmation_mail_is_dkim_signed_for_the_senders_domain(
    client: httpx.AsyncClient,
    runtime: Runtime,
    outbox: Any,
    smtp_server: SmtpServer,
    key_pair: tuple[Path, bytes],
) -> None:
    sender = await make_sender(runtime)
    await make_list(runtime, sender)
    assert (await json_signup(client, "news", "hanako@example.jp")).status_code == 202
    await outbox()
    [received] = smtp_server.messages_to("hanako@example.jp")
    assert received.data.startswith(b"DKIM-Signature:")

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return key_pair[1] if name == f"mail._domainkey.{DOMAIN}.".encode() else None

    assert dkim.verify(received.data, dnsfunc=dns)
