"""A campaign's versions per language: each recipient gets the version of their language, else
the main one, and the legal footer in their own language in both parts (MH-1)."""

from __future__ import annotations

import pytest

from app.mail.compose import CampaignComposers, Version
from app.mail.sandbox import TemplateInvalid
from tests.mail.factories import list_identity, parse, parts, recipient, sender_identity, settings

JA = Version("{{ name }}様 今月のお知らせ", "<p>今月のお知らせです。</p>", None)
EN = Version("News for {{ name }}", "<p>This month's news.</p>", None)
JA_FOOTER = "今後このようなメールの受信を希望されない場合は"
EN_FOOTER = "You may refuse further emails from us at any time"


def _composers(**versions: Version) -> CampaignComposers:
    return CampaignComposers(
        main=JA,
        versions=versions,
        sender=sender_identity(),
        mailing_list=list_identity("ja"),
        settings=settings(),
    )


def test_mh1_each_language_gets_its_version_and_its_footer() -> None:
    composers = _composers(en=EN)
    english = parse(composers.compose(recipient(1, name="Mary"), "en"))
    assert english["Subject"] == "News for Mary"
    text, html = parts(english)
    assert "This month's news." in text
    assert "今月のお知らせ" not in text
    assert EN_FOOTER in text
    assert EN_FOOTER in html
    assert JA_FOOTER not in text + html
    assert '<html lang="en"' in html

    for language in ("ja", None):  # None: the list's language
        japanese = parse(composers.compose(recipient(2, name="花子"), language))
        assert japanese["Subject"] == "花子様 今月のお知らせ"
        text, html = parts(japanese)
        assert "今月のお知らせです。" in text
        assert JA_FOOTER in text
        assert JA_FOOTER in html
        assert EN_FOOTER not in text + html


def test_mh1_without_a_version_in_their_language_a_reader_still_gets_their_footer() -> None:
    """The main version's content, in its own language, and the footer a reader of English can
    read: the document says ja, the footer says en."""
    english = parse(_composers().compose(recipient(1), "en"))
    text, html = parts(english)
    assert "今月のお知らせです。" in text
    assert EN_FOOTER in text
    assert EN_FOOTER in html
    assert '<html lang="ja"' in html
    assert '<div class="shodaku-footer" lang="en"' in html


def test_a_broken_version_fails_the_build_not_the_first_recipient_of_it() -> None:
    composers = _composers(en=Version("News", "<p>{{ name", None))
    with pytest.raises(TemplateInvalid):
        composers.build_all()


def test_each_language_is_built_once() -> None:
    composers = _composers(en=EN)
    composers.build_all()
    assert composers.for_language("en") is composers.for_language("en")
    assert composers.for_language(None) is composers.for_language("ja")
    assert composers.for_language("fr") is composers.for_language("ja")  # the list's
