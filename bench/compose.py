"""Compose N campaign messages with CampaignComposer against the stdlib EmailMessage path.

Both paths render the same template for the same recipients; the stdlib path then builds each
message with ``EmailMessage`` and serialises it with ``as_bytes()`` (policy SMTP, 998-character
lines so the List-Unsubscribe URL is not folded), which is what the composer replaces.

    .venv/bin/python bench/compose.py [-n 20000] [--dkim] [--charset iso-2022-jp]

``--charset iso-2022-jp`` composes for a list whose mails are in ISO-2022-JP (carrier addresses);
every recipient's message can be written in it, so this times the ISO-2022-JP path throughout.

Also prints what deriving the text part costs either way: one text template derived from the
HTML template at build time (the composer's choice) against inscriptis on each rendered HTML;
and what a campaign with a version per language costs per message (CampaignComposers: half the
recipients read English, with the English footer), against the one-language composer.
"""

from __future__ import annotations

import argparse
import email.policy
import gc
import secrets
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import Settings
from app.mail.compose import (
    CampaignComposer,
    CampaignComposers,
    Recipient,
    Version,
    html_to_text,
)
from app.mail.identity import ListIdentity, SenderIdentity
from app.models.base import utcnow
from app.models.enums import Charset

SMTP_POLICY = email.policy.SMTP.clone(max_line_length=998)

SUBJECT = "{{ name }}様へ【承諾ニュース】5月号：新製品と夏のイベントのご案内"
ARTICLE = """
<tr><td style="padding:16px 24px;border-bottom:1px solid #eee;">
  <h2 style="margin:0 0 8px 0;font-size:18px;color:#1a1a1a;">{title}</h2>
  <p style="margin:0 0 12px 0;font-size:14px;line-height:1.7;color:#333;">{body}</p>
  <a href="https://shodaku.example/articles/{slug}?utm_source=newsletter&amp;utm_medium=email"
     style="display:inline-block;padding:8px 16px;background:#2b6cb0;color:#fff;
     text-decoration:none;border-radius:4px;">続きを読む</a>
</td></tr>"""
ARTICLES = [
    ("新製品「承諾ノート」発売", "紙とデジタルをつなぐ新しいノートが登場しました。" * 4, "note"),
    (
        "夏のイベントのお知らせ",
        "7月20日から東京・大阪・福岡の3会場で体験会を開催します。" * 4,
        "summer",
    ),
    ("お客様の声", "「毎朝の記録が楽しくなりました」という声をいただきました。" * 4, "voices"),
]
HTML = (
    """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>承諾ニュース 5月号</title>
<style>body{margin:0;background:#f6f6f6;font-family:sans-serif;}</style></head>
<body><table width="100%" cellpadding="0" cellspacing="0" style="max-width:640px;margin:0 auto;
background:#fff;">
<tr><td style="padding:24px;"><h1 style="margin:0;font-size:22px;">承諾ニュース 5月号</h1>
<p style="margin:8px 0 0 0;">{{ name }}様、いつもご利用ありがとうございます。
{% if attributes.plan is defined %}{{ attributes.plan }}会員様限定の特典も
ご用意しました。{% endif %}</p>
</td></tr>"""
    + "".join(ARTICLE.format(title=t, body=b, slug=s) for t, b, s in ARTICLES)
    + """
<tr><td style="padding:24px;font-size:13px;color:#666;">
このメールは{{ email }}宛にお送りしています。
</td></tr></table>
{{ footer }}
</body></html>"""
)

SENDER = SenderIdentity(
    name="株式会社承諾",
    postal_address="〒100-0001 東京都千代田区千代田1-1",
    contact_email="support@shodaku.example",
    contact_phone="03-1234-5678",
    contact_url=None,
    from_email="news@shodaku.example",
    from_name="承諾ニュース",
    reply_to=None,
    responsible_person=None,
)


def mailing_list(charset: str) -> ListIdentity:
    return ListIdentity(
        id=1, name="承諾ニュース", slug="shodaku-news", language="ja", charset=charset
    )


def recipients(n: int) -> list[Recipient]:
    return [
        Recipient(
            subscriber_id=i,
            email=f"reader{i}@example.jp",
            name=f"佐藤{i}",
            attributes={"plan": "ゴールド"} if i % 2 else {},
            unsubscribe_url=f"https://news.example.test/unsubscribe/{secrets.token_urlsafe(40)}",
        )
        for i in range(n)
    ]


def stdlib_message(composer: CampaignComposer, r: Recipient) -> bytes:
    """The same message built the obvious way: EmailMessage, then as_bytes()."""
    rendered = composer.render(r)
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = formataddr((SENDER.from_name or SENDER.name, SENDER.from_email))
    message["To"] = formataddr((r.name or "", r.email))
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = f"<{secrets.token_hex(16)}@shodaku.example>"
    message["List-Id"] = "承諾ニュース <shodaku-news.shodaku.example>"
    message["List-Unsubscribe"] = f"<{r.unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(rendered.text, cte="base64")
    message.add_alternative(rendered.html, subtype="html", cte="base64")
    return message.as_bytes()


def timed(label: str, n: int, fn: object) -> float:
    assert callable(fn)
    gc.collect()
    start = time.perf_counter()
    cpu = time.process_time()
    fn()
    per = (time.perf_counter() - start) / n * 1e6
    # CPU time too: on a machine shared with other work, wall time mostly measures the others.
    per_cpu = (time.process_time() - cpu) / n * 1e6
    print(f"{label:<52} {per:9.1f} µs/message (CPU {per_cpu:.1f} µs)")
    return per


def dkim_settings(directory: Path) -> dict[str, object]:
    key = directory / "dkim.pem"
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            str(key),
        ],
        check=True,
        capture_output=True,
    )
    return {"dkim_selector": "bench", "dkim_domain": "shodaku.example", "dkim_private_key": key}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="messages per path (20000)")
    parser.add_argument("--dkim", action="store_true", help="also time DKIM-signed composition")
    parser.add_argument(
        "--charset",
        choices=[c.value for c in Charset],
        default=Charset.UTF_8.value,
        help="the list's charset (utf-8)",
    )
    args = parser.parse_args()
    n = args.n
    the_list = mailing_list(args.charset)
    people = recipients(n)
    settings = Settings(env="dev", base_url="https://news.example.test")
    composer = CampaignComposer.build(
        subject=SUBJECT,
        html=HTML,
        text=None,
        sender=SENDER,
        mailing_list=the_list,
        settings=settings,
    )
    sample = composer.compose(people[0])
    # The ISO-2022-JP path, not its fallback to UTF-8, is what --charset iso-2022-jp times.
    assert f'charset="{args.charset}"'.encode() in sample.lower(), "not written in that charset"
    print(
        f"Python {sys.version.split()[0]}; {n} messages in {args.charset}; template "
        f"{len(HTML)} characters of HTML; a message is {len(sample)} bytes\n"
    )

    def fast() -> None:
        for r in people:
            composer.compose(r)

    def slow() -> None:
        for r in people:
            stdlib_message(composer, r)

    def render_only() -> None:
        for r in people:
            composer.render(r)

    # The same content for both languages, so that only choosing the composer (and the footer
    # in the recipient's language) differs from the line above it.
    by_language = CampaignComposers(
        main=Version(SUBJECT, HTML, None),
        versions={"en": Version(SUBJECT, HTML, None)},
        sender=SENDER,
        mailing_list=the_list,
        settings=settings,
    )
    by_language.build_all()
    languages = ["en" if i % 2 else None for i in range(n)]

    def mixed() -> None:
        for r, language in zip(people, languages, strict=True):
            by_language.compose(r, language)

    fast_us = timed("CampaignComposer.compose", n, fast)
    timed("CampaignComposers.compose (half ja, half en)", n, mixed)
    slow_us = timed("EmailMessage + as_bytes() (same rendering)", n, slow)
    render_us = timed("  of which rendering (subject, html, text, footer)", n, render_only)
    print(
        f"\nrendering is {render_us / fast_us:.0%} of compose; "
        f"ratio stdlib / composer: {slow_us / fast_us:.1f}x "
        f"(composer: {1e6 / fast_us:,.0f} msg/s on one core; "
        f"stdlib: {1e6 / slow_us:,.0f} msg/s)"
    )

    # The text part when no text template is given: the two ways, on fewer messages.
    m = min(n, 2000)
    subset = people[:m]

    def per_message_inscriptis() -> None:
        for r in subset:
            html_to_text(composer.render(r).html)

    print()
    timed("text by inscriptis on each rendered HTML (+render)", m, per_message_inscriptis)
    timed(
        "text from the derived template (render, chosen)",
        m,
        lambda: [composer.render(r) for r in subset],
    )

    if args.dkim:
        with tempfile.TemporaryDirectory() as tmp:
            signed = CampaignComposer.build(
                subject=SUBJECT,
                html=HTML,
                text=None,
                sender=SENDER,
                mailing_list=the_list,
                settings=Settings(
                    env="dev", base_url="https://news.example.test", **dkim_settings(Path(tmp))
                ),
            )
            k = min(n, 500)

            def signed_run() -> None:
                for r in people[:k]:
                    signed.compose(r)

            print()
            timed("CampaignComposer.compose with DKIM (dkimpy, RSA 2048)", k, signed_run)


if __name__ == "__main__":
    main()
