"""DKIM keys per sending domain (MH-3, DMARC alignment): each sender's mail is signed with the
key of its own From domain, or of a parent domain, and never with another domain's key."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import dkim
import pytest

from app.config import Settings
from app.mail.dkim import DkimConfigError, DkimKeyring
from tests.mail.factories import composer, parse, recipient, sender_identity


def _key(directory: Path, name: str) -> tuple[Path, bytes]:
    private = directory / f"{name}.pem"
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
            str(private),
        ],
        check=True,
        capture_output=True,
    )
    der = subprocess.run(
        ["openssl", "pkey", "-in", str(private), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, bytes]]:
    directory = tmp_path_factory.mktemp("dkim-domains")
    return {domain: _key(directory, domain) for domain in ("shodaku.example", "other.example")}


def _keys_setting(keys: dict[str, tuple[Path, bytes]]) -> str:
    return ",".join(f"{domain}:s1:{path}" for domain, (path, _) in keys.items())


def _signature_domain(data: bytes) -> str | None:
    header = parse(data)["DKIM-Signature"]
    if header is None:
        return None
    match = re.search(r"\bd=([^;\s]+)", str(header))
    assert match
    return match.group(1)


def test_each_sender_is_signed_with_its_own_domains_key(
    keys: dict[str, tuple[Path, bytes]],
) -> None:
    records = {f"s1._domainkey.{d}.".encode(): record for d, (_, record) in keys.items()}

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    setting = _keys_setting(keys)
    ours = composer(dkim_keys=setting).compose(recipient())
    theirs = composer(
        sender=sender_identity(from_email="letters@mail.other.example"), dkim_keys=setting
    ).compose(recipient())
    assert _signature_domain(ours) == "shodaku.example"
    # A subdomain's mail is signed by its parent domain's key: aligned under relaxed DMARC.
    assert _signature_domain(theirs) == "other.example"
    assert dkim.verify(ours, dnsfunc=dns)
    assert dkim.verify(theirs, dnsfunc=dns)


def test_a_domain_without_a_key_goes_unsigned_rather_than_misaligned(
    keys: dict[str, tuple[Path, bytes]],
) -> None:
    path, _ = keys["shodaku.example"]
    # The single-key settings name shodaku.example; a sender on elsewhere.example used to go
    # out signed d=shodaku.example, which fails DMARC alignment.
    data = composer(
        sender=sender_identity(from_email="news@elsewhere.example"),
        dkim_selector="s1",
        dkim_domain="shodaku.example",
        dkim_private_key=path,
    ).compose(recipient())
    assert b"DKIM-Signature" not in data


def test_keyring_matches_parents_not_lookalikes(keys: dict[str, tuple[Path, bytes]]) -> None:
    keyring = DkimKeyring.from_settings(Settings(env="dev", dkim_keys=_keys_setting(keys)))
    assert keyring.domains == ["other.example", "shodaku.example"]
    assert keyring.for_domain("SHODAKU.example") is not None
    assert keyring.for_domain("a.b.shodaku.example") is not None
    assert keyring.for_domain("notshodaku.example") is None
    assert keyring.for_domain("example") is None


@pytest.mark.parametrize("entry", ["shodaku.example", "shodaku.example:s1", ":s1:/x.pem"])
def test_a_malformed_keys_setting_is_refused(entry: str) -> None:
    with pytest.raises(DkimConfigError, match="domain:selector"):
        DkimKeyring.from_settings(Settings(env="dev", dkim_keys=entry))
