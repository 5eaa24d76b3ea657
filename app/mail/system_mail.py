"""The system's own mails (the double opt-in confirmation), from ``email_templates/``."""

from __future__ import annotations

import email.policy
import secrets
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.models import MailingList, Sender
from app.models.base import utcnow

EMAIL_TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "email_templates"

# Long lines stay unfolded (a folded URL breaks), and headers are CRLF-terminated for SMTP.
SMTP_POLICY = email.policy.SMTP.clone(max_line_length=998)


def sender_domain(sender: Sender) -> str:
    return sender.from_email.rpartition("@")[2] or "localhost"


def make_message_id(domain: str) -> str:
    """A unique Message-ID on the sender's own domain (MH-2), without make_msgid()'s getfqdn()."""
    return f"<{secrets.token_hex(16)}@{domain}>"


def sender_contact(sender: Sender) -> str:
    return sender.contact_email or sender.contact_phone or sender.contact_url or ""


class SystemMail:
    def __init__(self, directory: Path = EMAIL_TEMPLATES_DIR) -> None:
        self._env = Environment(
            loader=FileSystemLoader(directory),
            undefined=StrictUndefined,
            autoescape=select_autoescape(["html"]),
            keep_trailing_newline=True,
        )

    def confirmation(
        self,
        *,
        to: str,
        mailing_list: MailingList,
        sender: Sender,
        confirm_url: str,
        expires_days: int,
        consent_text: str | None = None,
    ) -> EmailMessage:
        """CC-3: the confirmation request, with no advertising in it, only to the asking address.

        It quotes the consent wording recorded with the request (CR-1): confirming is agreeing
        to that wording, seen here, not only to whatever the signup page claimed to show."""
        lang = mailing_list.language if mailing_list.language in ("ja", "en") else "ja"
        context = {
            "sender_name": sender.name,
            "list_name": mailing_list.name,
            "postal_address": sender.postal_address,
            "contact": sender_contact(sender),
            "confirm_url": confirm_url,
            "expires_days": expires_days,
            "consent_text": consent_text,
        }
        subject = self._env.get_template(f"confirmation_subject_{lang}.txt").render(context)
        message = EmailMessage(policy=SMTP_POLICY)
        message["From"] = formataddr((sender.from_name or sender.name, sender.from_email))
        message["To"] = to
        message["Subject"] = " ".join(subject.split())
        message["Date"] = format_datetime(utcnow())
        message["Message-ID"] = make_message_id(sender_domain(sender))
        message["Auto-Submitted"] = "auto-generated"
        if sender.reply_to:
            message["Reply-To"] = sender.reply_to
        message.set_content(self._env.get_template(f"confirmation_{lang}.txt").render(context))
        message.add_alternative(
            self._env.get_template(f"confirmation_{lang}.html").render(context), subtype="html"
        )
        return message
