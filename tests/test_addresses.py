"""DS-6: what an SMTP server replies is logged with every address masked, in linear time and
bounded length, however hostile the reply."""

from __future__ import annotations

from app.addresses import MAX_REDACTED_CHARS, redact_addresses


def test_ds6_a_refusal_is_logged_with_the_address_masked() -> None:
    reply = "550 5.1.1 <taro.yamada@example.jp>: Recipient address rejected"
    assert redact_addresses(reply) == "550 5.1.1 <t***@example.jp>: Recipient address rejected"


def test_ds6_a_64kb_reply_is_masked_whole_and_logged_cut() -> None:
    """Before: a 64 KB run without '@' took 10 s (the regex restarted at every character);
    the loop waits on it. Now every address is masked and the line is at most 1,000 chars."""
    reply = "550 " + "a" * 65_000 + " <hanako@example.jp> " + "b@" * 30_000
    redacted = redact_addresses(reply)
    assert "hanako@" not in redacted
    assert len(redacted) == MAX_REDACTED_CHARS + 1
    assert redacted.endswith("…")
    masked = redact_addresses("<hanako@example.jp> " + "b@" * 300)
    assert masked.startswith("<h***@example.jp> ")
