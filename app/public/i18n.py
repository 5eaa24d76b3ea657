"""The words of the public pages, in Japanese and English, and how a page picks its language.

One catalogue per language with the same keys (a test holds them equal). Values are plain text
with ``str.format`` fields; the templates autoescape whatever comes out, so a sender's name can
never inject markup. The consent wording is built here too, because it is evidence: the exact
string shown beside the button is the string recorded with the consent (CC-2, CC-5, CR-1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from app.languages import LANGS, Lang, choose_lang, supported

# Each language named in itself: the switch to it reads in the language it leads to.
LANGUAGE_NAMES: Mapping[Lang, str] = {"ja": "日本語", "en": "English"}


def pick_lang(requested: str | None, default: str) -> Lang:
    """The page language: the one asked for if we have it, else the list's, else Japanese."""
    return choose_lang(requested, default)


def other_lang(lang: Lang) -> Lang:
    """The language a page's switch leads to."""
    return "en" if lang == "ja" else "ja"


# RFC 9110 12.4.2: a qvalue is 0 to 1 with at most three decimals.
_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")
# More than any browser sends; a longer header is read this far only.
_ACCEPT_LANGUAGE_MAX = 2000


def accept_language(header: str | None) -> Lang | None:
    """The language of ours a browser prefers, by its ``Accept-Language`` (RFC 9110 12.5.4).

    Each range weighs its q-value (1 when absent; an entry with a malformed one is ignored);
    a range counts for the language of its primary subtag (``en-GB`` for English); ``q=0``
    refuses a language. A wildcard gives its weight to a language not named otherwise, so
    ``en;q=0, *`` asks for Japanese. Equal weights go to the range named first. None when the
    browser accepts neither, or names neither and accepts anything (then the list decides).
    """
    if not header:
        return None
    named: dict[Lang, tuple[float, int]] = {}  # language -> (weight, position of first range)
    wildcard: float | None = None
    for position, entry in enumerate(header[:_ACCEPT_LANGUAGE_MAX].split(",")):
        tag, *params = (part.strip() for part in entry.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                weight = float(value) if _QVALUE.fullmatch(value) else -1.0
        if weight < 0 or not tag:
            continue
        tag = tag.lower()
        if tag == "*":
            wildcard = weight if wildcard is None else wildcard
            continue
        lang = supported(tag.split("-", 1)[0])
        if lang is not None:
            seen = named.get(lang)
            named[lang] = (max(weight, seen[0]) if seen else weight, seen[1] if seen else position)
    ranked = [(weight, -position, lang) for lang, (weight, position) in named.items()]
    if wildcard is not None:
        # After every named range (position), and only for a language not named.
        ranked += [(wildcard, -(10**6), lang) for lang in LANGS if lang not in named]
    ranked = [entry for entry in ranked if entry[0] > 0]
    if not ranked:
        return None
    if not named or all(named[lang][0] <= 0 for lang in named):
        # Only the wildcard speaks: it prefers no language of ours over the other, unless it
        # is left with one (the other refused).
        return ranked[0][2] if len(ranked) == 1 else None
    return max(ranked)[2]


def consent_wording(lang: Lang, *, sender_name: str, list_name: str, purpose: str) -> str:
    """The text beside the consent box, recorded verbatim with the consent (CC-2, CC-5, CR-1).

    It says that newsletter mail including advertising will be sent, names the sender formally
    (the consent is given to this sender, CC-1) and states the list's purpose of use (APPI).
    """
    return MESSAGES[lang]["consent.wording"].format(
        sender=sender_name, list=list_name, purpose=purpose.strip()
    )


MESSAGES: Mapping[Lang, Mapping[str, str]] = {
    "ja": {
        "consent.wording": (
            "{sender}が配信するメールマガジン「{list}」（広告・宣伝を含みます）を、"
            "入力したメールアドレスで受け取ることに同意します。\n"
            "個人情報の利用目的：{purpose}"
        ),
        "signup.title": "「{list}」のご登録",
        "signup.lead": "{sender}が配信するメールマガジンです。",
        "signup.purpose_heading": "個人情報の利用目的",
        "signup.email": "メールアドレス",
        "signup.required": "必須",
        "signup.name": "お名前",
        "signup.optional": "任意",
        "signup.honeypot": "この欄は空欄のままにしてください",
        "signup.consent_heading": "配信への同意",
        "signup.double_opt_in_note": (
            "お申し込み後、確認メールをお送りします。"
            "メール内のリンクからご登録を確認いただくまで、配信は始まりません。"
        ),
        "signup.button": "同意して登録する",
        "signup.optout_note": "配信は、各メールに記載のリンクからいつでも停止できます。",
        "signup.error_heading": "入力内容をご確認ください",
        "error.consent_required": (
            "メールの受け取りに同意いただける場合は、同意のチェックボックスにチェックを入れてください。"
        ),
        "error.invalid_email": "メールアドレスの形式が正しくありません。",
        "error.name_too_long": "お名前は200文字以内で入力してください。",
        "error.name_invalid": "お名前は改行や制御文字を含まない1行で入力してください。",
        "pending.title": "確認メールをお送りしました",
        "pending.body": (
            "ご入力のメールアドレス宛てに、{sender}から確認メールをお送りしました。"
            "メール内のリンクを開き、「登録を確認する」ボタンを押してください。"
            "確認いただくまで、メールマガジンの配信は始まりません。"
        ),
        "pending.expiry": "リンクの有効期限は{days}日間です。",
        "pending.no_mail": (
            "すでにご登録済みの場合は、確認メールは届きません。"
            "メールが見当たらない場合は、迷惑メールフォルダもご確認ください。"
        ),
        "subscribed.title": "ご登録ありがとうございます",
        "subscribed.body": "メールマガジン「{list}」のお申し込みを受け付けました。",
        "subscribed.note": (
            "以前に配信停止のお手続きをされたアドレスの場合は、ご本人確認のため確認メールを"
            "お送りします。メール内のリンクから確認いただくまで、配信は再開されません。"
        ),
        "too_many.title": "しばらくしてからお試しください",
        "too_many.body": (
            "短い時間に多くのお申し込みがありました。しばらく時間をおいてから、もう一度お試しください。"
        ),
        "confirm.title": "ご登録の確認",
        "confirm.body": (
            "{sender}のメールマガジン「{list}」へのご登録を確認します。"
            "ご本人によるお申し込みであれば、下のボタンを押してください。"
        ),
        "confirm.wording_heading": "ご確認いただく同意の内容",
        "confirm.button": "登録を確認する",
        "confirm.ignore": (
            "お心当たりがない場合は、このページを閉じてください。確認されない限り、配信は始まりません。"
        ),
        "confirmed.title": "ご登録が完了しました",
        "confirmed.body": "{sender}のメールマガジン「{list}」へのご登録が完了しました。",
        "confirmed.already": "このご登録は、すでに確認済みです。",
        "confirmed.optout": "配信は、各メールに記載のリンクからいつでも停止できます。",
        "unsubscribe.title": "配信停止",
        "unsubscribe.lead": "{sender}からのメール配信を停止します。",
        "unsubscribe.address": "対象のメールアドレス：{address}",
        "unsubscribe.scope_legend": "停止する範囲",
        "unsubscribe.scope_sender": "{sender}からのすべてのメール",
        "unsubscribe.scope_list": "メールマガジン「{list}」のみ",
        "unsubscribe.button": "配信を停止する",
        "unsubscribe.note": (
            "ボタンを押すと、すぐに配信が停止されます。ログインや追加の情報は必要ありません。"
        ),
        "unsubscribed.title": "配信を停止しました",
        "unsubscribed.body_sender": "今後、{sender}からメールをお送りすることはありません。",
        "unsubscribed.body_list": ("今後、メールマガジン「{list}」をお送りすることはありません。"),
        "unsubscribed.no_mail": (
            "この手続きの完了をお知らせするメールは、お送りしません。"
            "どなたかがこのアドレスを登録フォームに入力した場合に限り、その登録を確認するための"
            "メールが届くことがありますが、1日に1通までです。確認されない限り、配信は再開されません。"
        ),
        "unsubscribed.again": (
            "再び受け取りをご希望の場合は、登録フォームからあらためてお申し込みください。"
        ),
        "error.title": "このページを表示できません",
        "error.list_not_found": "お探しの登録フォームは見つかりませんでした。URLをご確認ください。",
        "error.link_invalid": (
            "このリンクは無効か、すでに使えなくなっています。"
            "メールに記載のリンクを、途中で切れないようにそのまま開いてください。"
        ),
        "error.link_expired": (
            "この確認リンクは有効期限が切れています。お手数ですが、もう一度お申し込みください。"
        ),
        "error.bad_request": "リクエストを処理できませんでした。",
        "error.link_over": (
            "この確認リンクは、すでに使えなくなっています（配信停止や、新しいお申し込みの確認が"
            "あったためです）。"
        ),
        "error.next_signup": "受け取りをご希望の場合は、登録フォームからお申し込みください：{url}",
        "error.next_contact": "ご不明な点は、{sender}（下記の連絡先）までお問い合わせください。",
        "unsubscribe.already": (
            "このアドレスへの「{list}」の配信は、すでに停止されています。"
            "ほかの配信もまとめて停止する場合は、下のボタンをお使いください。"
        ),
        "footer.sender": "発信者",
        "footer.address": "所在地",
        "footer.contact": "お問い合わせ",
        "footer.responsible": "責任者",
        "home.title": "Shodaku メール配信サーバー",
        "home.lead": (
            "このサーバーは、同意を記録したうえでメールマガジンを配信する Shodaku です。"
            "配信の停止や登録の確認は、お手元のメールに記載のリンクから行えます。"
        ),
        "home.docs": "API リファレンス",
        "home.redoc": "API リファレンス（ReDoc 版）",
        "home.health": "稼働状況",
        "lang.label": "表示言語",
        # The JSON answers of the signup door ("detail"; the "error" class stays English).
        "api.pending": (
            "登録できるアドレスであれば、確認メールをお送りしています。"
            "メール内のリンクから確認いただいた時点で、登録が始まります。"
        ),
        "api.subscribed": (
            "登録しました。以前に配信停止されたアドレスには、まず確認メールをお送りし、"
            "確認いただくまで配信しません。"
        ),
        "api.consent_required": (
            "consent: ご本人の同意が必要です（同意のチェックボックス）。consent は true で"
            "送信してください。"
        ),
        "api.invalid_email": "email: メールアドレスの形式が正しくありません。",
        "api.name_too_long": "name: {max}文字以内で指定してください。",
        "api.name_invalid": "name: 改行や制御文字を含まない1行で指定してください。",
        "api.not_json": "本文が正しい JSON ではありません。",
        "api.too_deep": "本文の入れ子が深すぎるため、登録として読み取れません。",
        "api.not_found": "該当するリストはありません。",
        "api.too_many": (
            "このクライアントからの登録が多すぎます。しばらくしてから再度お試しください。"
        ),
        "api.media_type": (
            "登録は、フォーム（urlencoded または multipart）か JSON で送信してください。"
        ),
        "api.unregistered_wording": (
            "consent_text: このリストに登録された文言ではありません（または廃止済みです）。"
            "このリストは、運営者が登録フォーム用に登録した文言を、登録どおりの形でのみ受け付けます。"
            "運営者は POST /api/v1/lists/{list_id}/consent-texts で文言を登録できます。"
        ),
        # A field of the JSON body that failed, by the kind of failure.
        "api.field.missing": "必須です",
        "api.field.too_long": "{max}文字以内で指定してください",
        "api.field.too_short": "{min}文字以上で指定してください",
        "api.field.string": "文字列で指定してください",
        "api.field.bool": "true または false で指定してください",
        "api.field.object": "JSON オブジェクトで指定してください",
        "api.field.choice": "{expected} のいずれかを指定してください",
        "api.field.one_line": "改行や制御文字を含まない1行で指定してください",
        "api.field.text": "制御文字や NUL 文字を含めることはできません",
        "api.field.invalid": "値が正しくありません（{reason}）",
    },
    "en": {
        "consent.wording": (
            "I agree to receive the newsletter “{list}” from {sender}, including advertising, "
            "at the email address I entered.\n"
            "Purpose of use of my personal information: {purpose}"
        ),
        "signup.title": "Subscribe to “{list}”",
        "signup.lead": "A newsletter sent by {sender}.",
        "signup.purpose_heading": "Purpose of use of your personal information",
        "signup.email": "Email address",
        "signup.required": "required",
        "signup.name": "Name",
        "signup.optional": "optional",
        "signup.honeypot": "Leave this field empty",
        "signup.consent_heading": "Your consent",
        "signup.double_opt_in_note": (
            "We will send you a confirmation email. Nothing else is sent until you confirm "
            "with the link in it."
        ),
        "signup.button": "Agree and subscribe",
        "signup.optout_note": "You can unsubscribe at any time with the link in every email.",
        "signup.error_heading": "Please check your entry",
        "error.consent_required": "To subscribe, tick the box to agree to receive the emails.",
        "error.invalid_email": "This is not a valid email address.",
        "error.name_too_long": "The name must be at most 200 characters.",
        "error.name_invalid": "The name must be one line, without line breaks or control codes.",
        "pending.title": "Check your mailbox",
        "pending.body": (
            "{sender} has sent a confirmation email to the address you entered. Open the link "
            "in it and press “Confirm subscription”. The newsletter starts only after you "
            "confirm."
        ),
        "pending.expiry": "The link is valid for {days} days.",
        "pending.no_mail": (
            "If you are already subscribed, no new email is sent. If you cannot find it, "
            "look in your spam folder too."
        ),
        "subscribed.title": "Thank you for subscribing",
        "subscribed.body": "We have received your subscription to the newsletter “{list}”.",
        "subscribed.note": (
            "If this address had unsubscribed before, we first send a confirmation email to "
            "make sure it is you; nothing is sent until you confirm with the link in it."
        ),
        "too_many.title": "Please try again later",
        "too_many.body": "There were too many signups in a short time. Please try again later.",
        "confirm.title": "Confirm your subscription",
        "confirm.body": (
            "Confirm your subscription to the newsletter “{list}” from {sender}. If you asked "
            "for it, press the button below."
        ),
        "confirm.wording_heading": "What you are agreeing to",
        "confirm.button": "Confirm subscription",
        "confirm.ignore": (
            "If you did not ask for this, close this page: nothing is sent unless you confirm."
        ),
        "confirmed.title": "You are subscribed",
        "confirmed.body": (
            "Your subscription to the newsletter “{list}” from {sender} is confirmed."
        ),
        "confirmed.already": "This subscription was already confirmed.",
        "confirmed.optout": "You can unsubscribe at any time with the link in every email.",
        "unsubscribe.title": "Unsubscribe",
        "unsubscribe.lead": "Stop emails from {sender}.",
        "unsubscribe.address": "Email address: {address}",
        "unsubscribe.scope_legend": "What to stop",
        "unsubscribe.scope_sender": "Every email from {sender}",
        "unsubscribe.scope_list": "Only the newsletter “{list}”",
        "unsubscribe.button": "Unsubscribe",
        "unsubscribe.note": (
            "Pressing the button unsubscribes you at once. No login or other details are needed."
        ),
        "unsubscribed.title": "You are unsubscribed",
        "unsubscribed.body_sender": "You will receive no further email from {sender}.",
        "unsubscribed.body_list": "You will receive no further issues of the newsletter “{list}”.",
        "unsubscribed.no_mail": (
            "No email is sent to confirm this. Only if someone enters this address in a signup "
            "form again can a request to confirm that signup reach you, at most one a day; "
            "nothing more is sent unless you confirm it."
        ),
        "unsubscribed.again": (
            "If you want the emails again some day, subscribe again with the signup form."
        ),
        "error.title": "This page cannot be shown",
        "error.list_not_found": "There is no signup form at this address. Check the URL.",
        "error.link_invalid": (
            "This link is not valid or can no longer be used. Open the link from the email "
            "exactly as it is, without cutting it."
        ),
        "error.link_expired": "This confirmation link has expired. Please subscribe again.",
        "error.bad_request": "The request could not be processed.",
        "error.link_over": (
            "This confirmation link can no longer be used (the address was unsubscribed, or a "
            "newer request was confirmed)."
        ),
        "error.next_signup": "If you want the emails, subscribe with the signup form: {url}",
        "error.next_contact": "For any question, contact {sender} (details below).",
        "unsubscribe.already": (
            "“{list}” is already stopped for this address. To stop the sender's other "
            "mailings as well, use the button below."
        ),
        "footer.sender": "Sender",
        "footer.address": "Postal address",
        "footer.contact": "Contact",
        "footer.responsible": "Responsible person",
        "home.title": "Shodaku newsletter server",
        "home.lead": (
            "This server runs Shodaku, which sends newsletters only with recorded consent. "
            "To stop the emails or confirm a signup, use the link in the email you received."
        ),
        "home.docs": "API reference",
        "home.redoc": "API reference (ReDoc)",
        "home.health": "Health check",
        "lang.label": "Language",
        "api.pending": (
            "If the address can be subscribed, a confirmation mail is on its way to it; the "
            "subscription starts when the link in it is used."
        ),
        "api.subscribed": (
            "Subscribed. An address that had opted out first gets a confirmation mail, and is "
            "mailed only once it is confirmed."
        ),
        "api.consent_required": (
            "consent: the person must agree (tick the consent box); consent must be true."
        ),
        "api.invalid_email": "email: not a valid email address.",
        "api.name_too_long": "name: at most {max} characters.",
        "api.name_invalid": "name: one line without line breaks or control characters.",
        "api.not_json": "The body is not valid JSON.",
        "api.too_deep": "The body is not a signup: it is nested too deep.",
        "api.not_found": "There is no such list.",
        "api.too_many": "Too many signups from this client; try again later.",
        "api.media_type": "Send the signup as a form (urlencoded or multipart) or as JSON.",
        "api.unregistered_wording": (
            "consent_text: not a registered wording of this list (or one since retired). This "
            "list accepts only the wordings its operator registered for its signup forms, "
            "exactly as registered; the operator registers them with "
            "POST /api/v1/lists/{list_id}/consent-texts."
        ),
        "api.field.missing": "required",
        "api.field.too_long": "at most {max} characters",
        "api.field.too_short": "at least {min} characters",
        "api.field.string": "must be a string",
        "api.field.bool": "must be true or false",
        "api.field.object": "must be a JSON object",
        "api.field.choice": "must be {expected}",
        "api.field.one_line": "must be one line without control characters",
        "api.field.text": "may not contain control or NUL characters",
        "api.field.invalid": "not valid ({reason})",
    },
}


class Translator:
    """``t("key", name=value)`` in templates, bound to one language."""

    def __init__(self, lang: Lang) -> None:
        self.lang = lang
        self._messages = MESSAGES[lang]

    def __call__(self, key: str, /, **values: object) -> str:
        text = self._messages[key]
        return text.format(**values) if values else text
