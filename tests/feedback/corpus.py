"""Messages that come back, as real servers write them: delivery status notifications (RFC 3464)
from Postfix, Exim, Microsoft 365 and Gmail, plain-text bounces (qmail, a Japanese carrier),
feedback reports (RFC 5965), auto-replies, and malformed input. Written for these tests."""

from __future__ import annotations


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def dsn(
    to: str,
    *,
    status: str = "5.1.1",
    action: str = "failed",
    recipient: str = "taro@example.jp",
    mta: str = "mx.example.jp",
    message_id: str = "<dsn-1@mx.example.jp>",
    diagnostic: str = "smtp; 550 5.1.1 User unknown",
) -> bytes:
    """Postfix's DSN: a human part, the delivery-status part, the original's headers."""
    return _crlf(f"""Return-Path: <>
From: MAILER-DAEMON@{mta} (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {to}
Auto-Submitted: auto-replied
Message-ID: {message_id}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="8C2D4A0B.1701234567/{mta}"

This is a MIME-encapsulated message.

--8C2D4A0B.1701234567/{mta}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host {mta}.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{recipient}>: host mx2.example.jp said: {diagnostic}

--8C2D4A0B.1701234567/{mta}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; {mta}
X-Postfix-Queue-ID: 8C2D4A0B
Arrival-Date: Fri,  4 Dec 2026 10:00:00 +0900 (JST)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx2.example.jp
Diagnostic-Code: {diagnostic}

--8C2D4A0B.1701234567/{mta}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <{to}>
From: news@shodaku.example
To: {recipient}
Subject: =?UTF-8?B?44GK55+l44KJ44Gb?=

--8C2D4A0B.1701234567/{mta}--
""")


def exim_dsn(to: str, *, status: str = "4.2.2") -> bytes:
    """Exim's DSN, with its X-Failed-Recipients and the same standard structure."""
    return _crlf(f"""From: Mail Delivery System <Mailer-Daemon@exim.example.net>
To: {to}
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: hanako@example.net
Auto-Submitted: auto-replied
Message-Id: <E1exim-0001@exim.example.net>
Content-Type: multipart/report; report-type=delivery-status; boundary=1701234567-eximdsn-1
MIME-Version: 1.0

--1701234567-eximdsn-1
Content-type: text/plain; charset=us-ascii

This message was created automatically by mail delivery software.
  hanako@example.net
    mailbox is full: retry timeout exceeded

--1701234567-eximdsn-1
Content-type: message/delivery-status

Reporting-MTA: dns; exim.example.net

Action: failed
Final-Recipient: rfc822;hanako@example.net
Status: {status}

--1701234567-eximdsn-1--
""")


def microsoft_dsn(to: str) -> bytes:
    """Microsoft 365's NDR: a global delivery-status part (RFC 6533) and an HTML notice."""
    return _crlf(f"""From: postmaster@contoso.onmicrosoft.com
To: {to}
Subject: Undeliverable: =?utf-8?B?44GK55+l44KJ44Gb?=
Message-ID: <ms-ndr-0001@contoso.onmicrosoft.com>
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="_000_ndr_"
MIME-Version: 1.0

--_000_ndr_
Content-Type: text/html; charset="utf-8"

<html><body><p>Your message to jiro@contoso.example couldn't be delivered.</p>
<p>Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found'</p>
</body></html>

--_000_ndr_
Content-Type: message/global-delivery-status

Reporting-MTA: dns;BN8PR12MB.namprd12.prod.outlook.com
Received-From-MTA: dns;mail.shodaku.example

Original-Recipient: rfc822;jiro@contoso.example
Final-Recipient: rfc822;jiro@contoso.example
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound

--_000_ndr_--
""")


def delayed_dsn(to: str) -> bytes:
    """Gmail's "delayed" notice: still trying, not a bounce."""
    return dsn(
        to,
        status="4.4.1",
        action="delayed",
        mta="mail-sor-f41.google.com",
        message_id="<delay-1@google.com>",
        diagnostic="smtp; 421 4.4.1 Connection timed out",
    )


def qmail_bounce(
    to: str, *, reply: str = "550 5.1.1 <saburo@example.org>... User unknown"
) -> bytes:
    """qmail: no DSN structure, only text."""
    return _crlf(f"""Return-Path: <>
From: MAILER-DAEMON@qmail.example.org
To: {to}
Subject: failure notice
Message-ID: <qmail-1@qmail.example.org>

Hi. This is the qmail-send program at qmail.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<saburo@example.org>:
203.0.113.25 does not like recipient.
Remote host said: {reply}
Giving up on 203.0.113.25.

--- Below this line is a copy of the message.
""")


def carrier_bounce(to: str) -> bytes:
    """A Japanese carrier's plain bounce, its notice in Japanese (ISO-2022-JP)."""
    body = (
        "次のアドレスへのメールは配信できませんでした。\n"
        "宛先不明: user@docomo.ne.jp\n550 5.1.1 unknown user\n"
    )
    jis = body.encode("iso-2022-jp")
    head = _crlf(f"""Return-Path: <>
From: Mail Administrator <postmaster@docomo.ne.jp>
To: {to}
Subject: =?iso-2022-jp?b?GyRCR1s/LklURz0kTiQqQ04kaSQ7GyhC?=
Message-ID: <carrier-1@docomo.ne.jp>
MIME-Version: 1.0
Content-Type: text/plain; charset=ISO-2022-JP
Content-Transfer-Encoding: 7bit

""")
    return head + jis.replace(b"\n", b"\r\n")


def arf(
    to: str, *, original_return_path: str, message_id: str = "<arf-1@fbl.example.com>"
) -> bytes:
    """An RFC 5965 feedback report, as the large feedback loops send them."""
    return _crlf(f"""From: <staff@fbl.example.com>
Date: Fri, 4 Dec 2026 12:00:00 +0900
Subject: FW: お知らせ
To: <{to}>
Message-ID: {message_id}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
\tboundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Fri, 4 Dec 2026 11:00:00 +0900.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <{original_return_path}>
Arrival-Date: Fri, 4 Dec 2026 11:00:00 +0900
Source-IP: 192.0.2.1
Reported-Domain: shodaku.example

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

Return-Path: <{original_return_path}>
From: <news@shodaku.example>
Subject: お知らせ
To: <taro@example.jp>
Message-ID: <original-1@shodaku.example>

(the original body)
--part1_13d.2e68ed54_boundary--
""")


def vacation(to: str) -> bytes:
    return _crlf(f"""From: taro@example.jp
To: {to}
Subject: 不在のお知らせ (Out of office)
Auto-Submitted: auto-replied
Message-ID: <vacation-1@example.jp>

12月10日まで不在にしております。
""")


def refusal(to: str, *, message_id: str = "<refusal-1@example.jp>") -> bytes:
    """What a mail client sends to a mailto List-Unsubscribe address."""
    return _crlf(f"""From: taro@example.jp
To: {to}
Subject: unsubscribe
Message-ID: {message_id}

unsubscribe
""")


MALFORMED = [
    b"",
    b"\x00\xff\xfe garbage without headers",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=\r\n\r\n--\r\n",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\n"
    b"Content-Type: message/delivery-status\r\n\r\nStatus: \xff\xfe\r\nAction: failed\r\n--x--",
    b"From: MAILER-DAEMON@x\r\nSubject: =?utf-8?B?!!!?=\r\n"
    b"Content-Type: text/plain; charset=bogus\r\n\r\n\xff",
    (
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n"
        + b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n" * 200
    ),
]
