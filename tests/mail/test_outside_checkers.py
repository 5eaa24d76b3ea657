"""The mail Shodaku writes, judged by tools nobody here wrote: SpamAssassin (Debian's package,
local rules only, no network tests) and Mail::DKIM, a DKIM verifier independent of dkimpy.

Each skips, saying why, where its tool is not installed (`.ci/run` installs both).
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from app.config import Settings
from app.mail.dkim import DkimKeyring
from app.mail.system_mail import SystemMail
from tests.mail.factories import composer, list_identity, recipient, sender_identity

SELECTOR = "s2026"
DOMAIN = "shodaku.example"
VERIFIER = Path(__file__).with_name("dkim_verify.pl")
MAX_SPAM_SCORE = 1.0


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian package {package}): check not run")
    return path


def _has_mail_dkim() -> bool:
    probe = subprocess.run(["perl", "-MMail::DKIM::Verifier", "-e", "1"], capture_output=True)
    return probe.returncode == 0


def spamassassin_score(message: bytes, home: Path) -> tuple[float, list[str]]:
    """The score and the rules that fired, with local tests only (-L: no DNS, no network)."""
    spamassassin = _require("spamassassin", "spamassassin")
    home.mkdir(exist_ok=True)
    result = subprocess.run(
        [spamassassin, "-L", "-t", "-p", str(home / "user_prefs")],
        input=message,
        capture_output=True,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=True,
    )
    head = result.stdout.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("ascii", "replace")
    status = re.search(r"^X-Spam-Status: .*?(?=^\S)", head + "\nEND", re.M | re.S)
    assert status, head
    unfolded = re.sub(r"\s+", " ", status.group(0))
    score = float(re.search(r"score=(-?[\d.]+)", unfolded).group(1))  # type: ignore[union-attr]
    tests = re.search(r"tests=(\S*)", unfolded)
    return score, (tests.group(1).split(",") if tests and tests.group(1) else [])


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("dkim")
    private = directory / "dkim.pem"
    subprocess.run(
        [
            *("openssl", "genpkey", "-algorithm", "RSA"),
            *("-pkeyopt", "rsa_keygen_bits:2048", "-out", str(private)),
        ],
        check=True,
        capture_output=True,
    )
    public_der = subprocess.run(
        ["openssl", "pkey", "-in", str(private), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    record = directory / "record.txt"
    record.write_bytes(b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_der))
    return private, record


def mail_dkim_verify(message: bytes, record: Path) -> list[dict[str, str]]:
    """Each signature's result by Mail::DKIM, the public key served as the DNS record."""
    _require("perl", "perl")
    if not _has_mail_dkim():
        pytest.skip("Mail::DKIM is not installed (Debian package libmail-dkim-perl)")
    result = subprocess.run(
        ["perl", str(VERIFIER), str(record), f"{SELECTOR}._domainkey.{DOMAIN}"],
        input=message,
        capture_output=True,
        timeout=60,
    )
    assert result.stderr == b"", result.stderr.decode()
    return [
        dict(field.split("=", 1) for field in line.split(" ") if "=" in field)
        for line in result.stdout.decode().splitlines()
    ]


def confirmation_mail(
    language: str, keyring: DkimKeyring | None = None, charset: str = "utf-8"
) -> bytes:
    return SystemMail(dkim=keyring).confirmation(
        to="hanako@example.jp",
        mailing_list=list_identity(language, charset=charset),
        sender=sender_identity(),
        confirm_url="https://news.example.test/confirm/AbCdEf0123456789.token",
        expires_days=7,
    )


# ISO-2022-JP: the charset of a list for Japanese carrier addresses (ja only: an English list
# has no reason to ask for it).
LANGUAGE_AND_CHARSET = pytest.mark.parametrize(
    ("language", "charset"), [("ja", "utf-8"), ("en", "utf-8"), ("ja", "iso-2022-jp")]
)


@LANGUAGE_AND_CHARSET
def test_confirmation_mail_scores_low_with_spamassassin(
    language: str, charset: str, tmp_path: Path
) -> None:
    """CC-3: the confirmation request, as a receiving filter sees it."""
    mail = confirmation_mail(language, charset=charset)
    assert f'charset="{charset}"'.encode() in mail.lower()
    score, rules = spamassassin_score(mail, tmp_path / "sa")
    assert score <= MAX_SPAM_SCORE, f"SpamAssassin scored {score}: {rules}"


@pytest.mark.parametrize("charset", ["utf-8", "iso-2022-jp"])
def test_confirmation_mail_is_signed_and_verifies_with_mail_dkim(
    key_pair: tuple[Path, Path], charset: str
) -> None:
    private, record = key_pair
    keyring = DkimKeyring.from_settings(
        Settings(env="dev", dkim_keys=f"{DOMAIN}:{SELECTOR}:{private}")
    )
    mail = confirmation_mail("ja", keyring, charset)
    assert f'charset="{charset}"'.encode() in mail.lower()
    [signature] = mail_dkim_verify(mail, record)
    assert signature["result"] == "pass", signature
    assert signature["domain"] == DOMAIN
    assert {"from", "to", "subject", "date", "message-id"} <= set(signature["headers"].split(":"))


@LANGUAGE_AND_CHARSET
def test_campaign_mail_scores_low_with_spamassassin(
    language: str, charset: str, tmp_path: Path
) -> None:
    """MH-1..MH-4 together: the campaign message as a receiving filter sees it."""
    message = composer(mailing_list=list_identity(language, charset=charset)).compose(recipient())
    assert f'charset="{charset}"'.encode() in message.lower()
    score, rules = spamassassin_score(message, tmp_path / "sa")
    assert score <= MAX_SPAM_SCORE, f"SpamAssassin scored {score}: {rules}"


@pytest.mark.parametrize("charset", ["utf-8", "iso-2022-jp"])
def test_mh3_campaign_signature_verifies_with_mail_dkim_and_covers_one_click(
    key_pair: tuple[Path, Path], charset: str
) -> None:
    private, record = key_pair
    built = composer(
        mailing_list=list_identity(charset=charset),
        dkim_selector=SELECTOR,
        dkim_domain=DOMAIN,
        dkim_private_key=private,
    )
    message = built.compose(recipient())
    assert f'charset="{charset}"'.encode() in message.lower()
    [signature] = mail_dkim_verify(message, record)
    assert signature["result"] == "pass", signature
    assert signature["domain"] == DOMAIN
    signed = signature["headers"].split(":")
    assert "list-unsubscribe" in signed
    assert "list-unsubscribe-post" in signed

    tampered = message.replace(
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click-Not"),
    )
    assert tampered != message
    [broken] = mail_dkim_verify(tampered, record)
    assert broken["result"] == "fail"
