"""Email addresses: validation, normalisation and keyed hashing (SG-4, DS-3)."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

from email_validator import EmailNotValidError, validate_email


class InvalidAddress(ValueError):
    """The text is not a deliverable-looking email address."""


def normalize_address(raw: str) -> str:
    """Return the canonical form of an address, or raise InvalidAddress (SG-4).

    NFKC first, so that full-width input typed with a Japanese IME (ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ)
    becomes ASCII; then syntax validation; internationalised domains are kept in their ASCII
    (punycode) form so that SMTP can carry them; the whole address is lower-cased so one person
    is one subscriber.
    """
    if not isinstance(raw, str):
        raise InvalidAddress("an email address must be text")
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text or len(text) > 320 or any(ch in text for ch in "\r\n\x00"):
        raise InvalidAddress("not a valid email address")
    try:
        # strict: also the 64-octet limit of the local part (RFC 5321), which SMTP servers enforce.
        result = validate_email(text, check_deliverability=False, allow_smtputf8=False, strict=True)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from exc
    ascii_form = result.ascii_email or result.normalized
    return ascii_form.lower()


def mask_address(address: str) -> str:
    """A form safe for logs: never a full address in a log line."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


# Anything shaped like local@domain inside free text, up to the brackets, quotes, spaces and
# punctuation that surround an address in an SMTP reply ("550 5.1.1 <taro@example.jp>: ...").
# The lookbehind makes a match start only where a run of address characters starts: without
# it, a long run with no '@' was scanned again from each of its characters (quadratic: a
# 64 KB reply held the event loop for seconds).
_ADDRESS_IN_TEXT = re.compile(
    r"(?<![^\s<>\"'(),;:\[\]@])[^\s<>\"'(),;:\[\]@]+@[^\s<>\"'(),;:\[\]@]+"
)
# What is logged of a reply: enough to see why, never an unbounded line.
MAX_REDACTED_CHARS = 1_000


def redact_addresses(text: str) -> str:
    """Text from elsewhere (an SMTP server's reply quotes the recipient) made safe for logs:
    every address in it masked, in linear time, and cut to :data:`MAX_REDACTED_CHARS` (DS-6)."""
    redacted = _ADDRESS_IN_TEXT.sub(lambda m: mask_address(m.group(0)), text)
    if len(redacted) > MAX_REDACTED_CHARS:
        return redacted[:MAX_REDACTED_CHARS] + "…"
    return redacted


class AddressHasher:
    """HMAC-SHA256 of the normalised address under the installation's address key."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def __call__(self, normalized_address: str) -> str:
        return hmac.new(self._key, normalized_address.encode(), hashlib.sha256).hexdigest()
