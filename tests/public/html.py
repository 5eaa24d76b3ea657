"""A small reader of the pages' HTML for assertions (stdlib only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    text: str = ""


@dataclass
class Page:
    html_lang: str | None = None
    elements: list[Element] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # for= id -> label text
    text: str = ""

    def inputs(self, name: str) -> list[Element]:
        return [e for e in self.elements if e.tag == "input" and e.attrs.get("name") == name]

    def input(self, name: str) -> Element:
        found = self.inputs(name)
        assert len(found) == 1, f"expected one input {name!r}, found {len(found)}"
        return found[0]

    def forms(self) -> list[Element]:
        return [e for e in self.elements if e.tag == "form"]

    def label_for(self, element_id: str) -> str:
        return self.labels[element_id]

    def link(self, element_id: str) -> str:
        """The href of the link with this id."""
        found = [e for e in self.elements if e.tag == "a" and e.attrs.get("id") == element_id]
        assert len(found) == 1, f"expected one link #{element_id}, found {len(found)}"
        href = found[0].attrs.get("href")
        assert href
        return href


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._label_for: str | None = None
        self._label_text: list[str] = []
        self._text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.page.html_lang = values.get("lang")
        if tag in ("style", "script", "title"):
            self._skip += 1
        if tag == "label":
            self._label_for = values.get("for")
            self._label_text = []
        self.page.elements.append(Element(tag, values))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title"):
            self._skip -= 1
        if tag == "label" and self._label_for is not None:
            self.page.labels[self._label_for] = "".join(self._label_text).strip()
            self._label_for = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self._text.append(data)
        if self._label_for is not None:
            self._label_text.append(data)

    def close(self) -> None:
        super().close()
        self.page.text = " ".join(" ".join(self._text).split())


def read_page(html: str) -> Page:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.page
