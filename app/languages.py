"""The languages Shodaku speaks (pages, system mails, the legal footer) and the one rule for
choosing among them: the first candidate it speaks, else Japanese."""

from __future__ import annotations

from typing import Literal, get_args

Lang = Literal["ja", "en"]
LANGS: tuple[Lang, ...] = get_args(Lang)


def supported(value: str | None) -> Lang | None:
    """``value`` if it is one of the languages Shodaku speaks, else None."""
    for lang in LANGS:
        if value == lang:
            return lang
    return None


def choose_lang(*candidates: str | None) -> Lang:
    """The first candidate Shodaku speaks (the one asked for, then what is known about the
    person, then the list's); Japanese when none is."""
    for candidate in candidates:
        found = supported(candidate)
        if found is not None:
            return found
    return "ja"
