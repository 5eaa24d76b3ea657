"""Unsubscribe tokens (OO-4): what the signer writes is what itsdangerous writes and reads."""

from __future__ import annotations

import pytest
from itsdangerous import URLSafeSerializer

from app.tokens import (
    HASH_PREFIX_LENGTH,
    UNSUBSCRIBE_SALT,
    InvalidToken,
    TokenSigner,
    UnsubscribeClaim,
    prefix_matches,
)

NEWEST, OLDER = "newest-key-0123456789abcdef", "older-key-0123456789abcdef"
HASH = "9f" * 32


@pytest.mark.parametrize(
    ("subscriber_id", "list_id", "address_hash"),
    [(1, 1, HASH), (2**53, 7, HASH), (123_456_789, 2**31 - 1, "0" * 64), (5, 6, "ab" * 32)],
)
def test_oo4_unsubscribe_token_is_the_one_itsdangerous_writes_and_reads_back(
    subscriber_id: int, list_id: int, address_hash: str
) -> None:
    signer = TokenSigner([NEWEST, OLDER], confirm_max_age=3600)
    token = signer.unsubscribe_token(subscriber_id, list_id, address_hash)
    # itsdangerous signs with the last key of its list: the newest.
    reference = URLSafeSerializer([OLDER, NEWEST], salt=UNSUBSCRIBE_SALT)
    claim = [subscriber_id, list_id, address_hash[:HASH_PREFIX_LENGTH]]
    assert token == reference.dumps(claim)
    assert reference.loads(token) == claim
    read = signer.read_unsubscribe(token)
    assert (read.subscriber_id, read.list_id, read.address_hash_prefix) == tuple(claim)


def test_oo4_token_signed_by_the_newest_key_and_still_read_after_rotation() -> None:
    token = TokenSigner([NEWEST, OLDER], confirm_max_age=3600).unsubscribe_token(3, 4, HASH)
    only_newest = TokenSigner([NEWEST], confirm_max_age=3600)
    assert only_newest.read_unsubscribe(token).subscriber_id == 3
    rotated = TokenSigner(["next-key-0123456789abcdef", NEWEST], confirm_max_age=3600)
    assert rotated.read_unsubscribe(token).list_id == 4
    with pytest.raises(InvalidToken):
        TokenSigner([OLDER], confirm_max_age=3600).read_unsubscribe(token)


@pytest.mark.parametrize(
    "prefix", ["", "9", "9f" * 5, "9f" * 6 + "0", "9F" * 6, "zz" * 6, "9f9f9f9f9f9\u00e9"]
)
def test_oo4_token_whose_prefix_is_not_the_full_fixed_length_is_refused(prefix: str) -> None:
    """A prefix of "" matched every address: only exactly HASH_PREFIX_LENGTH hex digits pass."""
    signer = TokenSigner([NEWEST], confirm_max_age=3600)
    forged = URLSafeSerializer([NEWEST], salt=UNSUBSCRIBE_SALT).dumps([1, 2, prefix])
    with pytest.raises(InvalidToken):
        signer.read_unsubscribe(forged)


def test_oo4_prefix_is_compared_whole_against_the_stored_hash() -> None:
    signer = TokenSigner([NEWEST], confirm_max_age=3600)
    claim = signer.read_unsubscribe(signer.unsubscribe_token(1, 2, HASH))
    assert prefix_matches(claim, HASH)
    assert not prefix_matches(claim, "9f" * 5 + "00" + "9f" * 26)
    assert not prefix_matches(UnsubscribeClaim(1, 2, ""), HASH)
