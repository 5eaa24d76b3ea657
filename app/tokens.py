"""Signed link tokens: one salt per purpose, key rotation by a list of keys (OO-4).

No token carries an address in clear: an unsubscribe token names a subscriber id, a list id and
a short prefix of the address's keyed hash (so a re-used id can never unsubscribe someone else);
a confirm token names the grant event it confirms.

The prefix is always exactly ``HASH_PREFIX_LENGTH`` lowercase hex characters: a token with any
other prefix is refused as invalid (a prefix of "" would match every address), and the prefix is
compared with the stored hash in constant time (``prefix_matches``).
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import re
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from app.errors import InvalidToken

UNSUBSCRIBE_SALT = "shodaku.unsubscribe.v1"
CONFIRM_SALT = "shodaku.confirm.v1"
HASH_PREFIX_LENGTH = 12
_HASH_PREFIX = re.compile(rf"[0-9a-f]{{{HASH_PREFIX_LENGTH}}}")


@dataclass(frozen=True, slots=True)
class UnsubscribeClaim:
    subscriber_id: int
    list_id: int
    address_hash_prefix: str


class ExpiredToken(InvalidToken):
    """A genuine link past its age; ``grant_event_id`` is what it was for, when readable."""

    grant_event_id: int | None = None


# Envelope and mailto tokens live in an address's local part: at most 64 characters, and some
# relays lowercase it. So they are short, lowercase, and signed with a truncated HMAC (80 bits)
# rather than itsdangerous' base64.
FEEDBACK_SALT = b"shodaku.feedback.v1"
_FEEDBACK_TOKEN = re.compile(r"([a-z])([0-9a-z.]{1,40})-([a-z2-7]{16})")


@dataclass(frozen=True, slots=True)
class FeedbackClaim:
    """What a VERP or mailto token names: ``kind`` ``d`` (a delivery), ``o`` (an outbox
    message) or ``u`` (a subscriber and list, for the mailto unsubscribe); ``ids`` its ids."""

    kind: str
    ids: tuple[int, ...]
    address_hash_prefix: str | None = None


class FeedbackTokens:
    """OO-4, SG-4: tokens for ``bounce+<token>@`` and ``unsubscribe+<token>@``. Verified under
    every configured key, as the unsubscribe links are; they never expire."""

    def __init__(self, keys_newest_first: list[str]) -> None:
        self._keys = [
            hmac.new(key.encode(), FEEDBACK_SALT, "sha256").digest() for key in keys_newest_first
        ]

    def _mac(self, key: bytes, body: str) -> str:
        digest = hmac.new(key, body.encode("ascii"), "sha256").digest()
        return base64.b32encode(digest[:10]).decode("ascii").lower()

    def _token(self, body: str) -> str:
        return f"{body}-{self._mac(self._keys[0], body)}"

    def delivery(self, delivery_id: int) -> str:
        return self._token("d" + _b36(delivery_id))

    def outbox(self, outbox_id: int) -> str:
        return self._token("o" + _b36(outbox_id))

    def unsubscribe(self, subscriber_id: int, list_id: int, address_hash: str) -> str:
        prefix = address_hash[:HASH_PREFIX_LENGTH]
        return self._token(f"u{_b36(subscriber_id)}.{_b36(list_id)}.{prefix}")

    def read(self, token: str) -> FeedbackClaim:
        """The claim of a token, or InvalidToken (forged, altered, or not ours)."""
        match = _FEEDBACK_TOKEN.fullmatch(token.lower())
        if match is None:
            raise InvalidToken("not a feedback token")
        kind, rest, mac = match.groups()
        body = kind + rest
        if not any(hmac.compare_digest(mac, self._mac(key, body)) for key in self._keys):
            raise InvalidToken("not a feedback token")
        parts = rest.split(".")
        try:
            if kind in "do" and len(parts) == 1:
                return FeedbackClaim(kind, (int(parts[0], 36),))
            if kind == "u" and len(parts) == 3 and _HASH_PREFIX.fullmatch(parts[2]):
                return FeedbackClaim(kind, (int(parts[0], 36), int(parts[1], 36)), parts[2])
        except ValueError:
            pass
        raise InvalidToken("not a feedback token")


def _b36(number: int) -> str:
    if number < 0:
        raise ValueError("ids are positive")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


class TokenSigner:
    def __init__(self, keys_newest_first: list[str], *, confirm_max_age: int) -> None:
        # itsdangerous signs with the last key and verifies with all: newest goes last.
        keys = list(reversed(keys_newest_first))
        self._unsubscribe = URLSafeSerializer(keys, salt=UNSUBSCRIBE_SALT)
        # One signer for every unsubscribe token a campaign writes (see unsubscribe_token).
        self._unsubscribe_signer = self._unsubscribe.make_signer()
        self._confirm = URLSafeTimedSerializer(keys, salt=CONFIRM_SALT)
        self._confirm_max_age = confirm_max_age

    def unsubscribe_token(self, subscriber_id: int, list_id: int, address_hash: str) -> str:
        """OO-4: never expires, and verifies under every configured key.

        Exactly what ``URLSafeSerializer.dumps`` writes (a test compares them), less its new
        signer per call: campaigns write one token per message.
        """
        claim = [subscriber_id, list_id, address_hash[:HASH_PREFIX_LENGTH]]
        payload = self._unsubscribe.dump_payload(claim)
        return self._unsubscribe_signer.sign(payload).decode("ascii")

    def read_unsubscribe(self, token: str) -> UnsubscribeClaim:
        try:
            value = self._unsubscribe.loads(token)
        except BadSignature as exc:
            raise InvalidToken("This unsubscribe link is not valid.") from exc
        if (
            not isinstance(value, list)
            or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value[:2])
            or not isinstance(value[2], str)
            or not _HASH_PREFIX.fullmatch(value[2])
        ):
            raise InvalidToken("This unsubscribe link is not valid.")
        return UnsubscribeClaim(value[0], value[1], value[2])

    def confirm_token(self, grant_event_id: int) -> str:
        return self._confirm.dumps(grant_event_id)

    def read_confirm(self, token: str) -> int:
        try:
            value = self._confirm.loads(token, max_age=self._confirm_max_age)
        except SignatureExpired as exc:  # before BadSignature: it is a subclass
            expired = ExpiredToken("This confirmation link has expired.")
            # The signature is ours, only old: what it was for can be read, to say what next.
            with contextlib.suppress(BadSignature):
                value = self._confirm.load_payload(exc.payload) if exc.payload else None
                if isinstance(value, int) and not isinstance(value, bool):
                    expired.grant_event_id = value
            raise expired from exc
        except BadSignature as exc:
            raise InvalidToken("This confirmation link is not valid.") from exc
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidToken("This confirmation link is not valid.")
        return value


def prefix_matches(claim: UnsubscribeClaim, address_hash: str) -> bool:
    """Whether the token's address-hash prefix is the one of ``address_hash`` (OO-4).

    The full fixed-length prefix, compared in constant time: never a ``startswith`` that an
    empty or short prefix satisfies for every address.
    """
    prefix = claim.address_hash_prefix
    return len(prefix) == HASH_PREFIX_LENGTH and hmac.compare_digest(
        prefix.encode("ascii", "replace"),
        address_hash[:HASH_PREFIX_LENGTH].encode("ascii", "replace"),
    )
