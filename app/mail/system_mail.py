"""The system's own mails (the double opt-in confirmation), from ``email_templates/``.

Written byte for byte like the campaign messages (``app.mail.mime``): encoded words within
RFC 2047's 75 characters and folded, parts in a 7-bit transfer encoding with CRLF line breaks,
and signed with the From domain's DKIM key when there is one (MH-2, MH-3, MH-4). In the list's
charset: ISO-2022-JP where the list asks for it, UTF-8 for a mail ISO-2022-JP cannot carry.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.languages import choose_lang
from app.mail import iso2022jp
from app.mail.dkim import DkimKeyring
from app.mail.identity import ISO_2022_JP, ListIdentity, SenderIdentity
from app.mail.mime import CRLF, header_text, header_text_jis, mailbox, mailbox_jis, text_part

log = logging.getLogger(__name__)

EMAIL_TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "email_templates"
# The languages the system mails and the legal footer are written in (email_templates/*_ja.*).


def make_message_id(domain: str) -> str:
    """A unique Message-ID on the sender's own domain (MH-2), without make_msgid()'s getfqdn()."""
    return f"<{secrets.token_hex(16)}@{domain}>"


class SystemMail:
    def __init__(
        self, directory: Path = EMAIL_TEMPLATES_DIR, dkim: DkimKeyring | None = None
    ) -> None:
        self._env = Environment(
            loader=FileSystemLoader(directory),
            undefined=StrictUndefined,
            autoescape=select_autoescape(["html"]),
            keep_trailing_newline=True,
        )
        self._dkim = dkim or DkimKeyring([])

    def confirmation(
        self,
        *,
        to: str,
        mailing_list: ListIdentity,
        sender: SenderIdentity,
        confirm_url: str,
        expires_days: int,
        consent_text: str | None = None,
        wording_on_page: bool = False,
        language: str | None = None,
    ) -> bytes:
        """CC-3: the confirmation request, with no advertising in it, only to the asking address.

        It quotes the consent wording recorded with the request (CR-1): confirming is agreeing
        to that wording, seen here, not only to whatever the signup page claimed to show. A
        wording the operator did not write or register is not quoted (``consent_text`` None,
        ``wording_on_page``): the mail then says the confirm page shows it.

        In ``language``, the one the person signed up in, else the list's."""
        lang = choose_lang(language, mailing_list.language)
        context = {
            "lang": lang,
            "sender_name": sender.name,
            "list_name": mailing_list.name,
            "postal_address": sender.postal_address,
            "contact": sender.contact,
            "confirm_url": confirm_url,
            "expires_days": expires_days,
            "consent_text": consent_text,
            "wording_on_page": wording_on_page and not consent_text,
        }
        subject = self._env.get_template(f"confirmation_subject_{lang}.txt").render(context)
        subject = " ".join(subject.split())
        text = self._env.get_template(f"confirmation_{lang}.txt").render(context)
        html = self._env.get_template(f"confirmation_{lang}.html")
        if mailing_list.charset == ISO_2022_JP:
            data = self._message_jis(
                sender=sender,
                to=to,
                subject=subject,
                text=text,
                html=html.render(context, charset=iso2022jp.CHARSET),
            )
            if data is not None:
                return data
            log.info(
                "confirmation mail for list %s sent in UTF-8; ISO-2022-JP cannot carry %s",
                mailing_list.id,
                iso2022jp.describe(
                    iso2022jp.unencodable(f"{sender.from_name or sender.name}{subject}{text}")
                ),
            )
        return self._message(
            sender=sender,
            to=to,
            subject=subject,
            text=text,
            html=html.render(context, charset="utf-8"),
        )

    def _message(
        self, *, sender: SenderIdentity, to: str, subject: str, text: str, html: str
    ) -> bytes:
        """MH-4: one From, one Date, a unique Message-ID, multipart/alternative with the text part
        first; DKIM-signed with the From domain's key when there is one (MH-3)."""
        return self._assemble(
            sender=sender,
            from_header=mailbox(sender.from_name or sender.name, sender.from_email, "From"),
            to=to,
            subject_header=header_text("Subject", subject),
            text_part=text_part("text/plain", text),
            html_part=text_part("text/html", html),
        )

    def _message_jis(
        self, *, sender: SenderIdentity, to: str, subject: str, text: str, html: str
    ) -> bytes | None:
        """``_message`` in ISO-2022-JP (RFC 1468); None when it cannot carry a character of the
        mail (the sender's name, the quoted consent wording...): the mail then goes in UTF-8."""
        from_header = mailbox_jis(sender.from_name or sender.name, sender.from_email, "From")
        subject_header = header_text_jis("Subject", subject)
        plain = iso2022jp.text_part("text/plain", text)
        rich = iso2022jp.text_part("text/html", html)
        if from_header is None or subject_header is None or plain is None or rich is None:
            return None
        return self._assemble(
            sender=sender,
            from_header=from_header,
            to=to,
            subject_header=subject_header,
            text_part=plain,
            html_part=rich,
        )

    def _assemble(
        self,
        *,
        sender: SenderIdentity,
        from_header: str,
        to: str,
        subject_header: str,
        text_part: bytes,
        html_part: bytes,
    ) -> bytes:
        domain = sender.domain
        boundary = f"=_shodaku_{secrets.token_hex(16)}"
        headers = [
            "From: " + from_header,
            "To: " + mailbox(None, to, "To"),
            "Subject: " + subject_header,
            "Date: " + format_datetime(datetime.now(UTC)),
            "Message-ID: " + make_message_id(domain),
            # An automatic reply to this mail would go to a person who asked for nothing.
            "Auto-Submitted: auto-generated",
        ]
        if sender.reply_to:
            headers.append("Reply-To: " + mailbox(None, sender.reply_to, "Reply-To"))
        headers += [
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"',
        ]
        separator = f"{CRLF}--{boundary}{CRLF}".encode("ascii")
        data = b"".join(
            (
                CRLF.join(headers).encode("ascii"),
                f"{CRLF}{CRLF}--{boundary}{CRLF}".encode("ascii"),
                text_part,
                separator,
                html_part,
                f"{CRLF}--{boundary}--{CRLF}".encode("ascii"),
            )
        )
        signer = self._dkim.for_domain(domain)
        return signer.sign(data) if signer is not None else data
