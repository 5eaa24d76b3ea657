"""DKIM signing of campaign messages (MH-3): the signature verifies and covers the one-click
unsubscribe headers. The key pair is made for the test with the openssl command (the
``cryptography`` package is not installed); the public key reaches ``dkim.verify`` through its
``dnsfunc`` argument, as a DNS TXT record would."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import dkim
import pytest

from app.mail.dkim import DkimConfigError
from tests.mail.factories import composer, parse, recipient

SELECTOR = "s2026"
DOMAIN = "shodaku.example"


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    directory = tmp_path_factory.mktemp("dkim")
    private = directory / "dkim.pem"
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            str(private),
        ],
        check=True,
        capture_output=True,
    )
    public_der = subprocess.run(
        ["openssl", "pkey", "-in", str(private), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_der)
    return private, record


def _dns(record: bytes) -> object:
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode() else None

    return lookup


def test_mh3_dkim_signature_verifies_and_covers_list_unsubscribe(
    key_pair: tuple[Path, bytes],
) -> None:
    private, record = key_pair
    built = composer(dkim_selector=SELECTOR, dkim_domain=DOMAIN, dkim_private_key=private)
    data = built.compose(recipient(name="佐藤 <一郎>"))
    assert data.startswith(b"DKIM-Signature: ")
    assert dkim.verify(data, dnsfunc=_dns(record))

    signature = parse(data)["DKIM-Signature"]
    tags = dict(
        (k.strip(), v.strip())
        for k, _, v in (t.partition("=") for t in re.sub(r"\s+", "", signature).split(";"))
    )
    signed = set(tags["h"].lower().split(":"))
    assert {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    } <= signed
    assert tags["d"] == DOMAIN
    assert tags["s"] == SELECTOR


def test_mh3_a_changed_unsubscribe_header_breaks_the_signature(
    key_pair: tuple[Path, bytes],
) -> None:
    private, record = key_pair
    built = composer(dkim_selector=SELECTOR, dkim_domain=DOMAIN, dkim_private_key=private)
    data = built.compose(recipient())
    tampered = data.replace(b"/unsubscribe/token-1", b"/unsubscribe/token-2", 1)
    assert tampered != data
    assert not dkim.verify(tampered, dnsfunc=_dns(record))


def test_without_dkim_settings_the_message_is_not_signed() -> None:
    assert b"DKIM-Signature" not in composer().compose(recipient())


def test_an_unreadable_dkim_key_stops_the_campaign_before_any_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(DkimConfigError):
        composer(dkim_selector=SELECTOR, dkim_domain=DOMAIN, dkim_private_key=bad)
    with pytest.raises(DkimConfigError):
        composer(dkim_selector=SELECTOR, dkim_domain=DOMAIN, dkim_private_key=tmp_path / "none")
