"""MH-1 proven where it matters: each message composed from a template that tries to hide the
footer is opened in headless Chromium, and every display item must be visible to a reader.

"Visible" is checked the way a person would notice it missing: the item has a box inside the
page, no ancestor clips it, every ancestor is opaque and unfiltered, its text is at least 10px
in a colour that stands out from the background behind it, and, scrolled into view, the point
at its centre is the item itself (so nothing is drawn over it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.mail.factories import composer, parse, parts, recipient
from tests.mail.hiding import HIDING, HOSTILE_NAME

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed: browser test not run"
)

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]

# The display items of MH-1 as the Japanese footer writes them (tests/mail/factories.py).
ITEMS = {
    "sender's name": "株式会社承諾",
    "postal address": "東京都千代田区千代田1-1",
    "complaint contact": "support@shodaku.example",
    "refusal statement": "今後このようなメールの受信を希望されない場合は",
}

VISIBILITY = """
([needle, url]) => {
  const problems = [];
  const doc = document.documentElement;
  const parse = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const lin = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const backgroundOf = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const check = (what, el) => {
    el.scrollIntoView({block: "center", inline: "center"});
    const r = el.getBoundingClientRect();
    if (!(r.width > 0 && r.height > 0)) { problems.push(`${what}: no box`); return; }
    const top = r.top + window.scrollY, left = r.left + window.scrollX;
    if (top < 0 || left < 0 || top + r.height > doc.scrollHeight + 1
        || left + r.width > doc.scrollWidth + 1) problems.push(`${what}: outside the page`);
    for (let e = el.parentElement; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      const clips = s.overflowX !== "visible" || s.overflowY !== "visible"
        || s.contain.includes("paint") || s.clipPath !== "none";
      if (clips && e !== doc && e !== document.body) {
        const a = e.getBoundingClientRect();
        if (r.left < a.left - 1 || r.top < a.top - 1 || r.right > a.right + 1
            || r.bottom > a.bottom + 1) problems.push(`${what}: clipped by ${e.tagName}`);
      }
    }
    let opacity = 1;
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      opacity *= Number(s.opacity);
      if (s.filter !== "none") problems.push(`${what}: filter ${s.filter} on ${e.tagName}`);
      if (s.visibility !== "visible") problems.push(`${what}: visibility ${s.visibility}`);
      if (s.mixBlendMode !== "normal") problems.push(`${what}: blend mode on ${e.tagName}`);
    }
    if (opacity < 0.99) problems.push(`${what}: opacity ${opacity}`);
    const style = getComputedStyle(el);
    if (parseFloat(style.fontSize) < 10) problems.push(`${what}: font size ${style.fontSize}`);
    const fg = luminance(parse(style.color).slice(0, 3));
    const bg = luminance(backgroundOf(el));
    const contrast = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (contrast < 4.5) problems.push(`${what}: contrast ${contrast.toFixed(2)}`);
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    if (!hit || !(el === hit || el.contains(hit))) {
      problems.push(`${what}: covered by ${hit ? hit.outerHTML.slice(0, 80) : "nothing"}`);
    }
  };
  // The last occurrence in document order is the footer's (it follows the content).
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let found = null;
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.data.includes(needle)) found = n;
  }
  if (!found) return [`"${needle}" is not in the page`];
  // The text's own line: a span wrapped around the text node measures exactly its text.
  const span = document.createElement("span");
  found.parentNode.insertBefore(span, found);
  span.appendChild(found);
  check(needle, span);
  if (url !== null) {
    const links = [...document.querySelectorAll("a")].filter(a => a.href === url);
    if (!links.length) problems.push(`no link to ${url}`);
    else check("unsubscribe link", links[links.length - 1]);
  }
  return problems;
}
"""


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium): browser test not run")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def _new_page(browser: Any) -> Any:
    return await browser.new_page(viewport={"width": 800, "height": 900})


async def _problems(page: Any, html: str, url: str) -> list[str]:
    problems: list[str] = []
    try:
        await page.set_content(html, wait_until="load")
        for what, needle in ITEMS.items():
            link = url if what == "refusal statement" else None
            found = await page.evaluate(VISIBILITY, [needle, link])
            problems += [f"{what}: {p}" for p in found]
    except playwright_api.Error as exc:  # the page navigated away, or its script broke it
        problems.append(f"the page could not be read: {exc.message.splitlines()[0]}")
    return problems


async def test_mh1_no_template_hides_the_footer_in_a_browser(browser: Any) -> None:
    """MH-1: for every hiding technique in tests/mail/hiding.py, the message a real recipient
    (not the sample one) gets shows the sender's name, postal address, complaint contact,
    refusal statement and their own working unsubscribe link."""
    failures: dict[str, list[str]] = {}
    for n, (name, (html, attributes)) in enumerate(HIDING.items(), start=2):
        person = recipient(
            n,
            name=HOSTILE_NAME if name == "hostile recipient name" else "佐藤一郎",
            attributes=attributes,
        )
        _text, body = parts(parse(composer(html=html).compose(person)))
        page = await _new_page(browser)  # each message on a fresh page, as a reader opens it
        problems = await _problems(page, body, person.unsubscribe_url)
        await page.close()
        if problems:
            failures[name] = problems
    assert failures == {}


async def test_mh1_an_ordinary_newsletter_keeps_its_own_styles(browser: Any) -> None:
    """The template's head <style> still styles the template's content (its rules are only
    scoped to it), while the footer stays visible after it."""
    html = (
        "<!doctype html><html><head><style>"
        "body{background:#f6f6f6;margin:0} .headline{color:rgb(200, 0, 0);font-size:30px}"
        "table td{padding:12px} @media (min-width: 1px) { .lead{font-weight:700} }"
        "</style></head><body><table width='100%'><tr><td>"
        "<h1 class='headline'>{{ name }}様</h1><p class='lead' style='color:#123456'>本文</p>"
        "</td></tr></table></body></html>"
    )
    person = recipient(2)
    _text, body = parts(parse(composer(html=html).compose(person)))
    page = await _new_page(browser)
    await page.set_content(body, wait_until="load")
    styles = await page.evaluate(
        """() => {
          const h1 = document.querySelector('.headline'), lead = document.querySelector('.lead');
          const td = document.querySelector('td');
          return [getComputedStyle(h1).color, getComputedStyle(h1).fontSize,
                  getComputedStyle(lead).fontWeight, getComputedStyle(lead).color,
                  getComputedStyle(td).paddingTop,
                  getComputedStyle(h1.closest('table').parentElement).backgroundColor,
                  h1.textContent];
        }"""
    )
    assert styles == [
        "rgb(200, 0, 0)",
        "30px",
        "700",
        "rgb(18, 52, 86)",
        "12px",
        "rgb(246, 246, 246)",
        "佐藤一郎様",
    ]
    assert await _problems(page, body, person.unsubscribe_url) == []
