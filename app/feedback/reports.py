"""Reading what comes back into a verdict, with the standard library's email parser.

- A delivery status notification (RFC 3464, ``multipart/report; report-type=delivery-status``):
  the worst per-recipient ``Action``/``Status`` decides. Servers that send a plain-text bounce
  instead are read by their enhanced status code (RFC 3463) or SMTP reply in the text.
- A feedback report (RFC 5965, ``report-type=feedback-report``): a complaint.
- An auto-reply (RFC 3834 ``Auto-Submitted``, vacation notices): ignored.

Permanent failures (5.x.x) are hard bounces, except those that may pass (5.2.2 mailbox full,
5.2.1 disabled for now, 5.7.x policy and spam blocks, which say nothing about the address);
4.x.x are soft. Nothing here touches the database: ``app.feedback.service`` acts on the verdict.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from enum import StrEnum


class Verdict(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    AUTO_REPLY = "auto_reply"
    DELIVERED = "delivered"  # a DSN that reports success, delay or relay: nothing to do
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Report:
    verdict: Verdict
    status: str | None = None  # the enhanced status code, e.g. "5.1.1"
    reporter: str | None = None  # the reporting MTA, or the feedback loop's user agent
    message_id: str | None = None  # the report's own Message-ID, for deduplication
    # Feedback reports: the tokens found in the original message's headers (its Return-Path
    # and List-Unsubscribe), which name the delivery when the report reaches a fixed address.
    original_tokens: tuple[str, ...] = ()


_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_REPLY = re.compile(r"(?m)^\s*(?:Remote host said:\s*)?([45])\d\d[ -]")
# Permanent codes that do not prove the address dead: a full or disabled mailbox, and policy
# or reputation refusals (which a later message may pass).
_SOFT_PERMANENT = re.compile(r"^5\.(2\.[12]|7\.\d{1,3}|3\.4)$")
_BOUNCE_SENDER = re.compile(r"mailer-daemon|postmaster|mail delivery", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status notification|failure|has failed)|returned mail|"
    r"failure notice|mail delivery failed|配信(不能|エラー|失敗)|送信失敗|宛先不明",
    re.IGNORECASE,
)
_AUTO_SUBJECT = re.compile(
    r"out of (the )?office|auto(matic)?[ -]?reply|autoreply|vacation|不在|自動(応答|返信)",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"(?:bounce|unsubscribe)\+([a-z][0-9a-z.]{1,40}-[a-z2-7]{16})@", re.I)


def parse(data: bytes) -> Message:
    """The message, parsed leniently: malformed MIME is read as far as it goes, never raises.

    The compat32 parser: a tenth of the cost of the modern policy's, which decodes every header
    into objects; the few headers read here are decoded by ``_header`` when they are read."""
    return email.message_from_bytes(data)


def _header(message: Message, name: str) -> str:
    """A header's text, encoded words (RFC 2047) decoded; "" when absent or undecodable."""
    try:
        value = message.get(name)
        if value is None:
            return ""
        text = str(value)
        if "=?" in text:
            text = str(make_header(decode_header(text)))
    except Exception:  # a header the parser cannot decode
        return ""
    return text.strip()


def classify_status(status: str) -> Verdict:
    """RFC 3463: 2.x.x delivered, 4.x.x soft, 5.x.x hard unless it cannot prove the address
    dead (see the module's docstring)."""
    if status.startswith("2."):
        return Verdict.DELIVERED
    if status.startswith("4.") or _SOFT_PERMANENT.match(status):
        return Verdict.SOFT_BOUNCE
    return Verdict.HARD_BOUNCE


def _worse(a: Verdict, b: Verdict) -> Verdict:
    order = [Verdict.UNKNOWN, Verdict.DELIVERED, Verdict.SOFT_BOUNCE, Verdict.HARD_BOUNCE]
    return a if order.index(a) >= order.index(b) else b


def _report_type(message: Message) -> str:
    if message.get_content_type() != "multipart/report":
        return ""
    return str(message.get_param("report-type", "") or "").lower()


def _status_fields(part: Message) -> list[Message]:
    """The field groups of a message/delivery-status part: one per-message group, then one
    per recipient. The parser gives them as sub-messages, or (for the global variant, RFC 6533)
    as one sub-message whose body holds the rest, or as text: all three are read."""
    payload = part.get_payload()
    groups: list[Message] = []
    texts: list[str] = []
    if isinstance(payload, list):
        for sub in payload:
            if isinstance(sub, Message):
                groups.append(sub)
                rest = sub.get_payload()
                if isinstance(rest, str) and rest.strip():
                    texts.append(rest)
    elif isinstance(payload, str):
        texts.append(payload)
    for text in texts:
        for block in re.split(r"\r?\n\r?\n", text.strip()):
            if block.strip():
                groups.append(email.message_from_string(block + "\n"))
    return groups


def _from_dsn(message: Message) -> Report:
    verdict, worst_status, reporter = Verdict.UNKNOWN, None, None
    for part in message.walk():
        if part.get_content_type() not in (
            "message/delivery-status",
            "message/global-delivery-status",
        ):
            continue
        for group in _status_fields(part):
            reporter = reporter or _header(group, "Reporting-MTA")[:200] or None
            action = _header(group, "Action").lower()
            status_match = _STATUS.search(_header(group, "Status"))
            if not action and status_match is None:
                continue
            status = ".".join(status_match.groups()) if status_match else None
            if action in ("delivered", "relayed", "expanded"):
                found = Verdict.DELIVERED
            elif action == "delayed":
                found = Verdict.DELIVERED  # still trying: not a bounce yet
            elif status is not None:
                found = classify_status(status)
            else:
                found = Verdict.SOFT_BOUNCE if action == "failed" else Verdict.UNKNOWN
            if _worse(found, verdict) is found and found is not verdict:
                verdict, worst_status = found, status
            elif found is verdict and worst_status is None:
                worst_status = status
    return Report(verdict, worst_status, reporter)


def _text_of(message: Message, limit: int = 200_000) -> str:
    """The text parts, decoded (an unknown charset read as UTF-8), at most ``limit`` characters."""
    chunks: list[str] = []
    size = 0
    for part in message.walk():
        if part.get_content_maintype() != "text":
            continue
        raw = part.get_payload(decode=True)
        if not isinstance(raw, bytes):
            continue
        try:
            content = raw.decode(part.get_content_charset() or "us-ascii", "replace")
        except LookupError:  # a charset Python does not know
            content = raw.decode("utf-8", "replace")
        chunks.append(content[: limit - size])
        size += len(chunks[-1])
        if size >= limit:
            break
    return "\n".join(chunks)


def _from_plain_bounce(message: Message) -> Report:
    """A bounce without the DSN structure (qmail, some carriers): by the first enhanced status
    code in its text, else the first SMTP reply code; a message that does not look like a
    bounce at all is UNKNOWN."""
    looks_like_bounce = bool(
        _BOUNCE_SENDER.search(_header(message, "From"))
        or _BOUNCE_SUBJECT.search(_header(message, "Subject"))
    )
    if not looks_like_bounce:
        return Report(Verdict.UNKNOWN)
    text = _text_of(message)
    status_match = _STATUS.search(text)
    if status_match is not None and status_match.group(1) != "2":
        status = ".".join(status_match.groups())
        return Report(classify_status(status), status)
    reply = _SMTP_REPLY.search(text)
    if reply is not None:
        return Report(Verdict.HARD_BOUNCE if reply.group(1) == "5" else Verdict.SOFT_BOUNCE)
    return Report(Verdict.UNKNOWN)


def _from_feedback(message: Message) -> Report:
    reporter = None
    tokens: list[str] = []
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype == "message/feedback-report":
            for group in _status_fields(part):
                reporter = reporter or _header(group, "User-Agent")[:200] or None
        elif ctype in ("message/rfc822", "text/rfc822-headers"):
            payload = part.get_payload()
            if isinstance(payload, list):
                headers = "\n".join(
                    f"{k}: {v}" for p in payload if isinstance(p, Message) for k, v in p.items()
                )
            else:
                headers = str(payload)[:100_000]
            tokens += [t.lower() for t in _TOKEN.findall(headers)]
    return Report(
        Verdict.COMPLAINT, reporter=reporter, original_tokens=tuple(dict.fromkeys(tokens))
    )


def is_auto_reply(message: Message) -> bool:
    """RFC 3834 and the common non-standard markers of vacation and challenge replies."""
    auto = _header(message, "Auto-Submitted").lower()
    return bool(
        (auto and auto != "no")
        or _header(message, "X-Autoreply")
        or _header(message, "X-Autorespond")
        or _header(message, "Precedence").lower() in ("auto_reply", "junk", "bulk")
        or _AUTO_SUBJECT.search(_header(message, "Subject"))
    )


def read_report(data: bytes) -> Report:
    """The verdict on one message that came back. Never raises on malformed input."""
    try:
        message = parse(data)
        kind = _report_type(message)
        message_id = _header(message, "Message-ID")[:200] or None
        if kind == "feedback-report":
            found = _from_feedback(message)
        elif kind == "delivery-status":
            found = _from_dsn(message)
        elif is_auto_reply(message):
            found = Report(Verdict.AUTO_REPLY)
        else:
            found = _from_plain_bounce(message)
    except Exception:  # whatever the input, a verdict
        return Report(Verdict.UNKNOWN)
    return Report(found.verdict, found.status, found.reporter, message_id, found.original_tokens)
