"""Templates that try to hide the legal footer (MH-1), as a hostile template author would write
them, with the recipient data that goes with them.

Every template here is accepted when saved: what the sample recipient would show is fine, or
the trick is only switched on for real recipients (``{% if email != SAMPLE %}``), or it is
carried by a recipient's own data. Tricks that are visible on the sample recipient are refused
when the template is saved (see ``REFUSED_AT_SAVE``).
"""

from __future__ import annotations

from typing import Any

SAMPLE = "taro@example.jp"  # app.mail.compose.sample_recipient
REAL = f"{{% if email != '{SAMPLE}' %}}"  # opens a trick for real recipients only
END = "{% endif %}"
BODY = "<p>今月のおすすめ、{{ name }}様へ。</p>"
COVER = "position:fixed;top:0;left:0;width:100vw;height:100vh;background:#fff;z-index:2147483647"
HIDE_ALL = "display:none!important;visibility:hidden!important;opacity:0!important"

# name -> (html, recipient attributes)
HIDING: dict[str, tuple[str, dict[str, Any]]] = {
    "unclosed comment for real recipients": (f"{BODY}{REAL}<!--{END}", {}),
    "comment opened by a recipient value": (
        BODY + "{{ attributes.open | default('') | safe }}",
        {"open": "<!--"},
    ),
    "display:none wrapper": (f'{REAL}<div style="display:none">{END}{BODY}', {}),
    "hidden attribute wrapper": (f"{REAL}<div hidden>{END}{BODY}", {}),
    "font-size:0 white on white wrapper": (
        f'<div style="font-size:0;color:#fff;background:#fff">{BODY}',
        {},
    ),
    "style rule on the footer's class": (
        "<style>.shodaku-footer, .shodaku-footer * {" + HIDE_ALL + "}</style>" + BODY,
        {},
    ),
    # Found in review: a selector that starts with a combinator, put under the container, would
    # reach the container's next sibling, the footer.
    "general sibling selector at the start": (
        "<style>~div{display:none!important}</style>" + BODY,
        {},
    ),
    "adjacent sibling selector at the start": (
        "<style>+ div{visibility:hidden!important}</style>" + BODY,
        {},
    ),
    "sibling selector inside @media": (
        "<style>@media all{~ div{opacity:0!important}}</style>" + BODY,
        {},
    ),
    "sibling selector listed after a harmless one, white text": (
        "<style>p, ~div, ~div *{color:#fff!important}</style>" + BODY,
        {},
    ),
    "sibling selector moving the footer off-screen": (
        "<style>~div{position:absolute!important;left:-9999px!important}</style>" + BODY,
        {},
    ),
    "sibling selector in an svg style": (
        "<svg><style>~div{display:none!important}</style></svg>" + BODY,
        {},
    ),
    "child combinator at the start": ("<style>> div{display:none!important}</style>" + BODY, {}),
    "unclosed textarea": (f"{BODY}{REAL}<textarea>{END}", {}),
    "unclosed title": (f"{BODY}{REAL}<title>{END}", {}),
    "unclosed style": (f"{BODY}{REAL}<style>{END}", {}),
    "unclosed script": (f"{BODY}{REAL}<script>{END}", {}),
    "unclosed xmp": (f"{BODY}{REAL}<xmp>{END}", {}),
    "unclosed noscript": (f"{BODY}{REAL}<noscript>{END}", {}),
    "plaintext": (f"{BODY}{REAL}<plaintext>{END}", {}),
    "unclosed template": (f"{BODY}{REAL}<template>{END}", {}),
    "footer swallowed by an attribute value": (f'{BODY}{REAL}<p title="{END}', {}),
    "unclosed tag": (f"{BODY}{REAL}<p{END}", {}),
    "off-screen absolute wrapper": (
        f'<div style="position:absolute;left:-99999px;top:-99999px">{BODY}',
        {},
    ),
    "off-screen fixed wrapper": (f'<div style="position:fixed;top:-99999px">{BODY}', {}),
    "max-height:0 overflow:hidden wrapper": (
        f'<div style="max-height:0;overflow:hidden">{BODY}',
        {},
    ),
    "opacity:0 wrapper": (f'<div style="opacity:0">{BODY}', {}),
    "sibling and last-child selectors": (
        "<style>p ~ * {"
        + HIDE_ALL
        + "} div + div, div:last-child, body > *:last-child, body > * + *, *:last-of-type {"
        + HIDE_ALL
        + "}</style>"
        + BODY,
        {},
    ),
    "universal, html, body and :root rules": (
        "<style>html, body, :root {opacity:0!important;filter:opacity(0)!important;"
        "font-size:0!important} * {color:#fff!important;background:#fff!important;"
        "font-size:0!important}</style>" + BODY,
        {},
    ),
    "colour equal to the background": (
        "<style>body, div, p, a {color:#ffffff!important;background:#ffffff!important}"
        "</style>" + BODY,
        {},
    ),
    "full-page overlay": (f'{BODY}<div style="{COVER}"></div>', {}),
    "overlay in a modeless dialog": (f'{BODY}<dialog open style="{COVER}">x</dialog>', {}),
    "huge scaled box": (
        f'{BODY}<div style="transform:scale(500);transform-origin:0 0;background:#fff">'
        "&nbsp;</div>",
        {},
    ),
    "pseudo-element overlay": (
        "<style>p::after{content:'';"
        + COVER
        + "} p::before{content:'';"
        + COVER
        + "}</style>"
        + BODY,
        {},
    ),
    "negative margin pulling content over what follows": (
        f'<div style="margin-bottom:-100000px">{BODY}</div>'
        f'<div style="height:100000px;background:#fff"></div>',
        {},
    ),
    "page taller than a browser can lay out": (
        f'{BODY}<div style="height:40000000px"></div>',
        {},
    ),
    "base element": (f'<base href="https://evil.example/">{BODY}', {}),
    "external stylesheet link": (
        '<link rel="stylesheet" href="data:text/css,*%7Bdisplay:none!important%7D">' + BODY,
        {},
    ),
    "@import": (
        '<style>@import url("data:text/css,*%7Bdisplay:none!important%7D");</style>' + BODY,
        {},
    ),
    "@layer and @scope": (
        "<style>@layer x { * {" + HIDE_ALL + "} } @scope (html) { * {" + HIDE_ALL + "} }"
        "</style>" + BODY,
        {},
    ),
    "nested rule selecting an ancestor": (
        "<style>p { body:has(&), html:has(&) {" + HIDE_ALL + "} }</style>" + BODY,
        {},
    ),
    "@font-face with an invisible font": (
        "<style>@font-face{font-family:sans-serif;src:url(data:font/woff2;base64,AAAA)}"
        "@font-face{font-family:Arial;src:url(data:font/woff2;base64,AAAA)}</style>" + BODY,
        {},
    ),
    "meta refresh": ('<meta http-equiv="refresh" content="0;url=about:blank">' + BODY, {}),
    "svg style": (
        "<svg width=1 height=1><style>*{" + HIDE_ALL + "}</style></svg>" + BODY,
        {},
    ),
    "script and event handlers": (
        "<script>document.documentElement.innerHTML=''</script>"
        "<img src=x onerror=\"document.documentElement.innerHTML=''\">" + BODY,
        {},
    ),
    "popover": (
        f'{BODY}<div popover="manual" id="p" style="{COVER}">x</div>'
        '<button popovertarget="p">x</button>',
        {},
    ),
    "CSS injected through a recipient's attribute": (
        "<style>p{color:{{ attributes.colour | default('#333') }}}</style>" + BODY,
        {"colour": "red} * {" + HIDE_ALL + "} p {color:red"},
    ),
    "CSS injected through a recipient's attribute into an svg style": (
        "<svg width=1 height=1><style>p{color:{{ attributes.colour | default('#333') }}}"
        "</style></svg>" + BODY,
        {"colour": "red} html, body, * {" + HIDE_ALL + "} p {color:red"},
    ),
    "recipient value in an unquoted attribute": (
        "<p class={{ attributes.cls | default('x') }}>{{ name }}</p>",
        {"cls": "x hidden style=position:fixed"},
    ),
    "recipient value as a tag": (
        "<{{ attributes.tag | default('p') }}>" + BODY,
        {"tag": "textarea"},
    ),
    "hostile recipient name": (
        "<style>p{color:#333}</style><p title='{{ name }}'>{{ name }}</p>",
        {},
    ),
}

HOSTILE_NAME = '--></p><!--<div style="' + COVER + '">"\'><textarea>'

# html -> the reason the save-time check gives (MH-1: refused with 422 naming it)
REFUSED_AT_SAVE: dict[str, str] = {
    "<p>本文</p><!--": "inside an HTML comment",
    "<p>本文</p><textarea>": "inside <textarea>",
    "<p>本文</p><title>": "inside <title>",
    "<p>本文</p><style>": "inside <style>",
    "<p>本文</p><script>": "inside <script>",
    "<p>本文</p><xmp>": "inside <xmp>",
    "<p>本文</p><noscript>": "inside <noscript>",
    "<p>本文</p><plaintext>": "inside <plaintext>",
    "<p>本文</p><template>": "(such as <template>)",
    '<p>本文</p><p title="': "inside an HTML tag",
    "<p>本文</p><p": "inside an HTML tag",
}
