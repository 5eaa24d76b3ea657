"""Hostile input at every door (issue 5, "Bad input"): each gets a clear 4xx with the API.md
error body (``{"error": "<Class>", "detail": "<sentence>"}``), or the plain 400 page for a
link, and nothing is stored: every table holds the same rows before and after.

Runs on SQLite and on PostgreSQL (PostgreSQL refuses a NUL in text, SQLite stores it: both
must answer the same 422).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from app.models import (
    Base,
    Campaign,
    ConsentEvent,
    MailingList,
    Sender,
    Subscriber,
    Suppression,
    Template,
)
from app.runtime import Runtime
from tests.conftest import KEEP
from tests.factories import SENDER, consent_body, create_list, create_sender
from tests.imports.conftest import json_body, post_csv
from tests.public.conftest import confirm_url_in, form_signup, json_signup

# --- helpers ---------------------------------------------------------------------------------


async def row_counts(runtime: Runtime) -> dict[str, int]:
    """Rows in every table the application writes."""
    counts: dict[str, int] = {}
    async with runtime.sessionmaker() as session:
        for table in Base.metadata.sorted_tables:
            if table.name not in KEEP:
                counts[table.name] = int(
                    await session.scalar(select(func.count()).select_from(table)) or 0
                )
    return counts


def assert_error_body(response: httpx.Response, status: int | tuple[int, ...]) -> dict[str, Any]:
    """API.md: a clear 4xx with ``{"error": "<Class>", "detail": "<sentence>"}``."""
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    body: dict[str, Any] = response.json()
    assert isinstance(body["error"], str)
    assert body["error"][:1].isupper()
    assert isinstance(body["detail"], str)
    assert len(body["detail"]) > 10
    return body


@pytest.fixture
async def doors(admin: httpx.AsyncClient) -> dict[str, Any]:
    """A sender, a double opt-in list, a subscriber, a template and a campaign to aim at."""
    sender = await create_sender(admin)
    news = await create_list(admin, sender["id"])
    single = await create_list(admin, sender["id"], slug="weekly", double_opt_in=False)
    subscriber = (await admin.post("/subscribers", json={"email": "hanako@example.jp"})).json()
    template = (
        await admin.post(
            "/templates", json={"name": "t", "subject": "お知らせ", "html": "<p>こんにちは</p>"}
        )
    ).json()
    campaign = (
        await admin.post(
            "/campaigns",
            json={"name": "六月号", "list_id": single["id"], "template_id": template["id"]},
        )
    ).json()
    return {
        "sender": sender,
        "list": news,
        "single": single,
        "subscriber": subscriber,
        "template": template,
        "campaign": campaign,
    }


def valid_bodies(doors: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """door name -> (method, path, a body that succeeds)."""
    return {
        "sender": ("POST", "/senders", dict(SENDER)),
        "sender_patch": ("PATCH", f"/senders/{doors['sender']['id']}", dict(SENDER)),
        "list": (
            "POST",
            "/lists",
            {"name": "新着", "slug": "new", "sender_id": doors["sender"]["id"], "purpose": "案内"},
        ),
        "subscriber": (
            "POST",
            "/subscribers",
            {"email": "jiro@example.jp", "name": "山田次郎", "attributes": {"plan": "gold"}},
        ),
        "template": (
            "POST",
            "/templates",
            {"name": "n", "subject": "s", "html": "<p>h</p>", "text": "t"},
        ),
        "campaign": (
            "POST",
            "/campaigns",
            {"name": "n", "list_id": doors["single"]["id"], "template_id": doors["template"]["id"]},
        ),
        "consent": (
            "POST",
            f"/lists/{doors['list']['id']}/consents",
            {
                **consent_body("saburo@example.jp"),
                "user_agent": "Mozilla/5.0",
                "source_url": "https://example.jp/form",
            },
        ),
        "optout": ("POST", "/optouts", {"email": "hanako@example.jp", "channel": "phone"}),
    }


# Fields that may be written into a mail header, or onto one footer line: one line only (MH-4).
ONE_LINE_FIELDS = {
    "sender": [
        "name",
        "contact_email",
        "contact_phone",
        "contact_url",
        "from_email",
        "from_name",
        "reply_to",
        "responsible_person",
    ],
    "sender_patch": ["name", "from_email", "from_name", "contact_phone"],
    "list": ["name", "slug"],
    "subscriber": ["email", "name"],
    "template": ["name", "subject"],
    "campaign": ["name"],
    "consent": ["email", "user_agent", "source_url"],
    "optout": ["email"],
}
# Body text: line breaks are part of the text, but a NUL or other control character is not.
MULTI_LINE_FIELDS = {
    "sender": ["postal_address"],
    "list": ["purpose"],
    "template": ["html", "text"],
    "consent": ["consent_text"],
    "optout": ["note"],
}
# CR LF, and a Unicode line separator (which some mail libraries also break lines at).
HEADER_INJECTIONS = ["a\r\nBcc: victim@example.com", "a\u2028b"]


def _cases(fields: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(door, field) for door, names in fields.items() for field in names]


def _inject(body: dict[str, Any], field: str, hostile: str) -> dict[str, Any]:
    """The field's valid value with the hostile text in the middle (an address stays
    address-shaped, so that it is the hostile part that is refused)."""
    value = str(body.get(field) or "x@example.jp" if "email" in field else body.get(field) or "x")
    if "@" in value:
        local, _, domain = value.partition("@")
        return {**body, field: f"{local}{hostile}@{domain}"}
    return {**body, field: value[:1] + hostile + value[1:]}


async def _refused_everywhere(
    admin: httpx.AsyncClient,
    runtime: Runtime,
    request: tuple[str, str, dict[str, Any]],
    fields: list[str],
    hostiles: list[str],
) -> list[str]:
    """Send the body once per field and hostile value; what was not a clean 422 naming the
    field with nothing stored. (One test per door, not per value: each test pays for a fresh
    database, and there are hundreds of values.)"""
    method, path, body = request
    wrong = []
    for field in fields:
        for hostile in hostiles:
            before = await row_counts(runtime)
            # json.dumps escapes a lone surrogate as \\ud800, which is how a client sends one.
            response = await admin.request(
                method,
                path,
                content=json.dumps(_inject(body, field, hostile)),
                headers={"content-type": "application/json"},
            )
            if response.status_code != 422:
                wrong.append(f"{field}={hostile!r}: {response.status_code} {response.text[:200]}")
                continue
            error = assert_error_body(response, 422)
            if field not in error["detail"]:
                wrong.append(f"{field}={hostile!r}: detail does not name it: {error['detail']}")
            if await row_counts(runtime) != before:
                wrong.append(f"{field}={hostile!r}: something was stored")
    return wrong


@pytest.mark.parametrize("door", list(ONE_LINE_FIELDS))
async def test_mh4_line_breaks_in_one_line_fields_are_422_and_nothing_stored(
    admin: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any], door: str
) -> None:
    """MH-4: a CR/LF (or any line separator) in a value that may reach a header is refused."""
    request = valid_bodies(doors)[door]
    assert (
        await _refused_everywhere(admin, runtime, request, ONE_LINE_FIELDS[door], HEADER_INJECTIONS)
        == []
    )


@pytest.mark.parametrize("door", list(ONE_LINE_FIELDS))
async def test_nul_and_control_characters_in_every_text_field_are_422(
    admin: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any], door: str
) -> None:
    """A NUL, an escape or a lone surrogate in any text field, one-line or body text: 422 on
    both databases (PostgreSQL refuses a NUL, SQLite would store it), nothing stored."""
    request = valid_bodies(doors)[door]
    fields = ONE_LINE_FIELDS[door] + MULTI_LINE_FIELDS.get(door, [])
    assert (
        await _refused_everywhere(admin, runtime, request, fields, ["a\x00b", "\x1b[31m", "\ud800"])
        == []
    )


@pytest.mark.parametrize("door", ["subscriber", "consent"])
async def test_nul_inside_json_objects_is_422(
    admin: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any], door: str
) -> None:
    """attributes and evidence are stored as JSON; PostgreSQL's JSONB refuses a NUL."""
    method, path, body = valid_bodies(doors)[door]
    field = "attributes" if door == "subscriber" else "evidence"
    before = await row_counts(runtime)
    response = await admin.request(method, path, json={**body, field: {"k\x00": "v\x00"}})
    assert field in assert_error_body(response, 422)["detail"]
    assert await row_counts(runtime) == before


@pytest.mark.parametrize("door", ["sender", "list", "template"])
async def test_line_breaks_in_body_text_are_stored_as_given(
    admin: httpx.AsyncClient, doors: dict[str, Any], door: str
) -> None:
    """The other side of MH-4: a postal address, a purpose, an HTML body keep their lines."""
    method, path, body = valid_bodies(doors)[door]
    field = MULTI_LINE_FIELDS[door][0]
    value = "一行目\r\n二行目\n三行目"
    if door == "list":
        body = {**body, "slug": "lines"}
    response = await admin.request(method, path, json={**body, field: value})
    assert response.status_code == 201, response.text
    assert response.json()[field] == value


# --- public signup: form and JSON ------------------------------------------------------------


SIGNUP_HOSTILE = ["a\r\nBcc: victim@example.com", "a\x00b", "a\x1bb"]


@pytest.mark.parametrize("field", ["email", "name", "consent_text", "source_url"])
async def test_json_signup_refuses_control_characters(
    client: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any], field: str
) -> None:
    """CC-1, CR-1, MH-4 at the public JSON door: 422 with the error body, nothing stored."""
    values = {
        "email": "shiro@example.jp",
        "name": "四郎",
        "consent_text": "受け取りに同意します",
        "source_url": "https://example.jp/signup",
    }
    before = await row_counts(runtime)
    for hostile in SIGNUP_HOSTILE:
        if field == "consent_text" and "\n" in hostile:
            continue  # a consent wording may have several lines
        response = await json_signup(client, "news", **_inject(values, field, hostile))
        assert field in assert_error_body(response, 422)["detail"], hostile
    assert await row_counts(runtime) == before


@pytest.mark.parametrize("field", ["email", "name"])
async def test_form_signup_refuses_control_characters(
    client: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any], field: str
) -> None:
    """The hosted form shows itself again with the error (422), and stores nothing."""
    values = {"email": "shiro@example.jp", "name": "四郎"}
    before = await row_counts(runtime)
    for hostile in SIGNUP_HOSTILE:
        response = await form_signup(client, "news", **_inject(values, field, hostile))
        assert response.status_code == 422, (hostile, response.text[:300])
        assert response.headers["content-type"].startswith("text/html")
    assert await row_counts(runtime) == before


# --- oversized and undecodable bodies --------------------------------------------------------

ADMIN_POSTS = [
    "/senders",
    "/lists",
    "/subscribers",
    "/templates",
    "/campaigns",
    "/lists/1/consents",
    "/optouts",
    "/imports",
    "/templates/1/preview",
    "/campaigns/1/send",  # takes no body: under the limit the body is not read at all
]


def _big_json(size: int) -> bytes:
    return b'{"name": "' + b"x" * size + b'"}'


@pytest.mark.parametrize("size", [1_000_000, 10_000_000], ids=["1MB", "10MB"])
async def test_big_bodies_to_every_admin_post_are_413_or_422(
    admin: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any], size: int
) -> None:
    """Issue 5: a 1 MB or 10 MB body is refused (413 past the door's limit, else 422), neither
    a 500 nor a hang, and nothing is stored."""
    before = await row_counts(runtime)
    for path in ADMIN_POSTS:
        response = await admin.post(
            path, content=_big_json(size), headers={"content-type": "application/json"}
        )
        body = assert_error_body(response, (409, 413) if path.endswith("/send") else (413, 422))
        if size > 8 * 1024 * 1024 and path != "/imports":
            assert response.status_code == 413, path
            assert body["error"] == "TooLarge"
    assert await row_counts(runtime) == before


@pytest.mark.parametrize("path", ["/senders", "/subscribers"])
async def test_a_chunked_body_without_length_is_cut_off_at_the_limit(
    admin: httpx.AsyncClient, runtime: Runtime, path: str
) -> None:
    """No Content-Length to refuse up front: the body is counted as it arrives."""
    chunks_read = 0

    async def endless() -> Any:
        nonlocal chunks_read
        yield b'{"name": "'
        for _ in range(10_000):  # 640 MB if it were all read
            chunks_read += 1
            yield b"x" * 65536

    before = await row_counts(runtime)
    response = await admin.post(
        path, content=endless(), headers={"content-type": "application/json"}
    )
    assert assert_error_body(response, 413)["error"] == "TooLarge"
    assert chunks_read < 100
    assert await row_counts(runtime) == before


@pytest.mark.parametrize("size", [1_000_000, 10_000_000], ids=["1MB", "10MB"])
@pytest.mark.parametrize("kind", ["json", "form"])
async def test_big_bodies_to_the_signup_door_are_413_or_422(
    client: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any], kind: str, size: int
) -> None:
    before = await row_counts(runtime)
    if kind == "json":
        response = await client.post(
            "/subscribe/news",
            content=b'{"email": "a@example.jp", "consent": true, "consent_text": "'
            + b"x" * size
            + b'"}',
            headers={"content-type": "application/json"},
        )
    else:
        response = await client.post(
            "/subscribe/news",
            content=b"email=a%40example.jp&consent=yes&name=" + b"x" * size,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code in (413, 422), response.text[:300]
    if response.status_code == 413 or kind == "json":
        assert_error_body(response, (413, 422))
    assert await row_counts(runtime) == before


@pytest.mark.parametrize("token_kind", ["unsubscribe", "confirm"])
async def test_big_bodies_to_the_token_doors_are_413(
    client: httpx.AsyncClient, runtime: Runtime, token_kind: str
) -> None:
    before = await row_counts(runtime)
    response = await client.post(
        f"/{token_kind}/whatever",
        content=b"List-Unsubscribe=One-Click&x=" + b"x" * 10_000_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert assert_error_body(response, 413)["error"] == "TooLarge"
    assert await row_counts(runtime) == before


INVALID_UTF8 = [b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"]


@pytest.mark.parametrize("path", ["/senders", "/lists", "/subscribers", "/templates", "/optouts"])
async def test_invalid_utf8_json_is_422(
    admin: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any], path: str
) -> None:
    """Bytes that are not UTF-8 are not JSON: a 422 ValidationError, as any other non-JSON."""
    before = await row_counts(runtime)
    for raw in INVALID_UTF8:
        response = await admin.post(
            path,
            content=b'{"name": "' + raw + b'"}',
            headers={"content-type": "application/json"},
        )
        assert assert_error_body(response, 422)["error"] == "ValidationError", raw
    assert await row_counts(runtime) == before


async def test_invalid_utf8_at_the_signup_door(
    client: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any]
) -> None:
    """JSON: 422 with the error body. A form: 422, the form again; nothing stored."""
    before = await row_counts(runtime)
    for raw in INVALID_UTF8:
        await _signup_with_bytes(client, raw)
    assert await row_counts(runtime) == before


async def _signup_with_bytes(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(
        "/subscribe/news",
        content=b'{"email": "a@example.jp", "consent": true, "consent_text": "' + raw + b'"}',
        headers={"content-type": "application/json"},
    )
    assert_error_body(response, 422)
    response = await client.post(
        "/subscribe/news",
        content=b"email=" + raw + b"%40example.jp&consent=yes&name=" + raw,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 422, response.text[:300]


# --- addresses (SG-4) --------------------------------------------------------------------------

OVERLONG = [
    "a" * 65 + "@example.jp",  # the local part is at most 64 octets
    "taro@" + ".".join(["a" * 63] * 5) + ".jp",  # 321+ characters
    "a" * 300 + "@" + "b" * 20 + ".jp",
    "taro@" + "a" * 64 + ".jp",  # a label is at most 63
]
REFUSED_IDN = ["用户@例子.广告", "たろう@例え.jp"]  # non-ASCII local parts need SMTPUTF8


def _address_doors(doors: dict[str, Any], email: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("POST", "/subscribers", {"email": email}),
        ("POST", f"/lists/{doors['list']['id']}/consents", consent_body(email)),
        ("POST", "/optouts", {"email": email, "channel": "letter"}),
        ("POST", "/senders", {**SENDER, "from_email": email}),
    ]


async def test_sg4_overlong_and_unsendable_addresses_are_refused_at_every_door(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any]
) -> None:
    """SG-4: an address SMTP cannot carry is refused with a clear 422 at every door."""
    before = await row_counts(runtime)
    for email in OVERLONG + REFUSED_IDN:
        for method, path, body in _address_doors(doors, email):
            response = await admin.request(method, path, json=body)
            assert "email" in assert_error_body(response, 422)["detail"], (path, email)
        assert_error_body(await json_signup(client, "news", email), 422)
        assert (await form_signup(client, "news", email)).status_code == 422, email
    assert await row_counts(runtime) == before


IDN_NORMALISED = [
    ("taro@例え.jp", "taro@xn--r8jz45g.jp"),
    ("taro@xn--r8jz45g.jp", "taro@xn--r8jz45g.jp"),
    ("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ", "taro@example.jp"),
    ("Hanako@Example.JP", "hanako@example.jp"),
]


async def test_sg4_idn_domains_are_stored_in_their_ascii_form(admin: httpx.AsyncClient) -> None:
    """SG-4: an internationalised domain is normalised to punycode, which SMTP carries; a
    full-width address typed with an IME becomes ASCII; one person is one subscriber."""
    stored: list[str] = []
    for given, expected in IDN_NORMALISED:
        response = await admin.post("/subscribers", json={"email": given})
        if expected in stored:  # the same address once normalised: the same person
            assert_error_body(response, 409)
            continue
        assert response.status_code == 201, response.text
        assert response.json()["email"] == expected
        stored.append(expected)
    assert len(stored) == 3


# --- tokens tampered bit by bit (OO-3, OO-4, CC-3) ---------------------------------------------


async def _unsubscribe_token(runtime: Runtime, list_id: int, subscriber_id: int) -> str:
    """The token in the unsubscribe link this subscriber's mail from the list carries."""
    async with runtime.sessionmaker() as session:
        subscriber = await session.get(Subscriber, subscriber_id)
    assert subscriber is not None
    return runtime.signer.unsubscribe_token(subscriber.id, list_id, subscriber.address_hash)


def _variants(token: str) -> list[str]:
    """The token with each character in turn replaced by another of the URL-safe alphabet."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    out = []
    for i, ch in enumerate(token):
        replacement = alphabet[(alphabet.index(ch) + 7) % len(alphabet)] if ch in alphabet else "A"
        out.append(token[:i] + replacement + token[i + 1 :])
    return out


async def _suppressions(runtime: Runtime) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Suppression)) or 0)


async def _withdrawals(runtime: Runtime) -> list[int | None]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(
            select(ConsentEvent.subscriber_id).where(ConsentEvent.kind == "withdraw")
        )
        return list(rows.all())


async def test_oo3_tampered_unsubscribe_tokens_are_a_plain_400_and_opt_out_nobody(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any]
) -> None:
    """Every one-character change of a real unsubscribe token: GET and POST answer the plain
    400 page, never a 500; nobody is opted out (OO-3), least of all somebody else."""
    single = doors["single"]["id"]
    mine = await admin.post(f"/lists/{single}/consents", json=consent_body("ichiro@example.jp"))
    other = await admin.post(f"/lists/{single}/consents", json=consent_body("jiro@example.jp"))
    assert mine.status_code == other.status_code == 201
    subscriber_id = mine.json()["subscription"]["subscriber_id"]
    token = await _unsubscribe_token(runtime, single, subscriber_id)

    before = await row_counts(runtime)
    for variant in _variants(token):
        page = await client.get(f"/unsubscribe/{variant}")
        assert page.status_code in (200, 400), variant
        done = await client.post(f"/unsubscribe/{variant}", data={"List-Unsubscribe": "One-Click"})
        assert done.status_code in (200, 400), variant
        assert done.headers["content-type"].startswith("text/html")
        if done.status_code == 200:
            # A change in the padding bits of the last base64 character decodes to the same
            # bytes: the same person's own token, never another's.
            assert await _withdrawals(runtime) in ([], [subscriber_id])
    withdrawn = await _withdrawals(runtime)
    assert set(withdrawn) <= {subscriber_id}
    if not withdrawn:
        assert await row_counts(runtime) == before
    # The untouched token still works, and opts out exactly its owner.
    assert (await client.post(f"/unsubscribe/{token}", data={})).status_code == 200
    assert set(await _withdrawals(runtime)) == {subscriber_id}


GARBAGE_TOKENS = [
    "x",
    "." * 40,
    "a" * 5000,
    "%00",
    "eyJ9.e30.",
    "%FF%FE",
    "%0D%0ASet-Cookie:%20a=b",
    "1.2.3",
    "{{7*7}}",
    "' OR '1'='1",
]


async def test_garbage_tokens_are_a_plain_400(client: httpx.AsyncClient, runtime: Runtime) -> None:
    """A bad token answers 400 with a plain page, never 500 (API.md); nothing changes; no
    header is injected."""
    before = await row_counts(runtime)
    for token in GARBAGE_TOKENS:
        for kind in ("unsubscribe", "confirm"):
            for method in ("GET", "POST"):
                response = await client.request(method, f"/{kind}/{token}")
                assert response.status_code == 400, (kind, method, token, response.status_code)
                assert response.headers["content-type"].startswith("text/html")
                assert "set-cookie" not in response.headers
    # No token at all, or one that ends the path elsewhere: no such page.
    for path in ("/unsubscribe/", "/confirm/", "/unsubscribe/..%2F..%2Fetc%2Fpasswd"):
        assert (await client.post(path)).status_code in (404, 405)
    assert await row_counts(runtime) == before


async def test_cc3_tampered_confirm_tokens_confirm_nothing_and_a_replay_changes_nothing(
    client: httpx.AsyncClient,
    runtime: Runtime,
    doors: dict[str, Any],
    outbox: Any,
    smtp_server: Any,
) -> None:
    """CC-3: every one-character change of a real confirm token is the plain 400 page and
    confirms nothing; the real one confirms once; a replay says "already confirmed" and
    appends no event."""
    assert (await json_signup(client, "news", "goro@example.jp")).status_code == 202
    await outbox()
    url = confirm_url_in(smtp_server.messages_to("goro@example.jp")[0])
    token = url.rsplit("/", 1)[1]
    before = await row_counts(runtime)
    for variant in _variants(token):
        response = await client.post(f"/confirm/{variant}")
        assert response.status_code in (200, 400), variant
        if response.status_code == 400:
            assert response.headers["content-type"].startswith("text/html")
    async with runtime.sessionmaker() as session:
        confirms = await session.scalar(
            select(func.count()).select_from(ConsentEvent).where(ConsentEvent.kind == "confirm")
        )
    assert confirms in (0, 1)  # 1 only if a padding-bit variant was the same token

    first = await client.post(f"/confirm/{token}")
    assert first.status_code == 200
    after_first = await row_counts(runtime)
    assert after_first["consent_events"] == before["consent_events"] + 1 - (confirms or 0)
    replay = await client.post(f"/confirm/{token}")
    assert replay.status_code == 200
    assert re.search("already|既に|すでに", replay.text)
    assert await row_counts(runtime) == after_first


async def test_oo3_a_get_with_hostile_extras_never_unsubscribes(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any]
) -> None:
    """OO-3: link scanners send GETs with anything in the query and headers: nothing acts."""
    single = doors["single"]["id"]
    recorded = await admin.post(f"/lists/{single}/consents", json=consent_body("taro@example.jp"))
    token = await _unsubscribe_token(
        runtime, single, recorded.json()["subscription"]["subscriber_id"]
    )
    before = await row_counts(runtime)
    for query in [
        "List-Unsubscribe=One-Click",
        "scope=list",
        "confirm=1&scope=sender",
        "%00=%00",
        "a=" + "x" * 5000,
    ]:
        response = await client.get(
            f"/unsubscribe/{token}?{query}",
            headers={"content-type": "application/x-www-form-urlencoded", "x-http-method": "POST"},
        )
        assert response.status_code == 200
    assert await row_counts(runtime) == before
    assert await _suppressions(runtime) == 0


# --- SQL injection: stored literally, never run ------------------------------------------------

SQL_INJECTIONS = [
    "Robert'); DROP TABLE subscribers;--",
    "' OR '1'='1",
    '"; SELECT pg_sleep(30); --',
    "1; DELETE FROM senders WHERE 1=1",
    "x' UNION SELECT key_hash FROM api_keys --",
    "%' AND 1=0 UNION SELECT NULL--",
]


@pytest.mark.parametrize("sql", SQL_INJECTIONS)
async def test_sql_injection_strings_are_stored_literally(
    admin: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any], sql: str
) -> None:
    """Every text field holds the exact string; no statement in it runs."""
    sender = await admin.post(
        "/senders", json={**SENDER, "name": sql, "postal_address": sql, "from_name": sql}
    )
    assert sender.status_code == 201, sender.text
    mailing_list = await admin.post(
        "/lists",
        json={"name": sql, "slug": "sqli", "sender_id": sender.json()["id"], "purpose": sql},
    )
    subscriber = await admin.post(
        "/subscribers", json={"email": "sqli@example.jp", "name": sql, "attributes": {sql: sql}}
    )
    template = await admin.post(
        "/templates", json={"name": sql, "subject": sql, "html": f"<p>{sql}</p>", "text": sql}
    )
    campaign = await admin.post(
        "/campaigns",
        json={
            "name": sql,
            "list_id": mailing_list.json()["id"],
            "template_id": template.json()["id"],
        },
    )
    optout = await admin.post(
        "/optouts", json={"email": "hanako@example.jp", "channel": "letter", "note": sql}
    )
    for response in (mailing_list, subscriber, template, campaign, optout):
        assert response.status_code == 201, response.text
    async with runtime.sessionmaker() as session:
        assert (await session.get(Sender, sender.json()["id"])).name == sql  # type: ignore[union-attr]
        stored_list = await session.get(MailingList, mailing_list.json()["id"])
        assert stored_list is not None
        assert stored_list.purpose == sql
        stored_subscriber = await session.get(Subscriber, subscriber.json()["id"])
        assert stored_subscriber is not None
        assert stored_subscriber.name == sql
        assert stored_subscriber.attributes == {sql: sql}
        stored_template = await session.get(Template, template.json()["id"])
        assert stored_template is not None
        assert stored_template.subject == sql
        stored_campaign = await session.get(Campaign, campaign.json()["id"])
        assert stored_campaign is not None
        assert stored_campaign.name == sql
        # One withdrawal per sender (OO-5), each with the note as written.
        notes = await session.scalars(
            select(ConsentEvent.note).where(ConsentEvent.note.is_not(None))
        )
        assert set(notes.all()) == {sql}
        # The tables it tried to drop or empty are there, with their rows.
        assert await session.scalar(text("SELECT count(*) FROM subscribers")) == 2
        assert await session.scalar(text("SELECT count(*) FROM senders")) == 2
    # Looking up by such a string is a lookup, not a query of its own.
    search = await admin.get("/subscribers", params={"email": "sqli@example.jp"})
    assert [s["name"] for s in search.json()["items"]] == [sql]


# --- template injection: the sandbox holds, and a render is bounded ----------------------------

SANDBOX_ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os.system('id') }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ sender.__class__.__init__.__globals__ }}",
    "{{ attributes.__class__ }}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{{ request }}{{ config }}",
    "{% set x = attributes.update({'a': 1}) %}{{ attributes }}",
    "{{ '{0.__class__}'.format('') }}",
    "{% import 'os' as os %}",
    "{% include '/etc/passwd' %}",
]
RUNAWAY = [
    "{% for x in range(10**9) %}x{% endfor %}",
    "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}",
    "{{ 'x' * 10**10 }}",
    "{{ 9 ** 99999999 }}",
    "{{ 'x'|center(10**9) }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ ('x' * 100000)|replace('', 'y' * 1000) }}",
    "{% for i in range(99999) %}{{ 'x' * 1000 }}{% endfor %}",
    "{% macro f(n) %}{% for i in range(2) %}{{ f(n + 1) }}{% endfor %}{% endmacro %}{{ f(0) }}",
    "{% for x in [1] recursive %}{{ loop([1, 2]) }}{% endfor %}",
    "{{ [0]|batch(10**9, 0)|list }}",
]


@pytest.mark.parametrize(
    ("sources", "parts"),
    [(SANDBOX_ESCAPES, ("subject", "html", "text")), (RUNAWAY, ("html",))],
    ids=["sandbox-escapes", "runaway-renders"],
)
async def test_template_injection_is_422_and_nothing_stored(
    admin: httpx.AsyncClient,
    runtime: Runtime,
    doors: dict[str, Any],
    sources: list[str],
    parts: tuple[str, ...],
) -> None:
    """Issue 5: templates cannot escape the sandbox (``{{ ''.__class__ }}``) nor run away
    (loops, sizes, widths): a 422 naming the part, quickly, and nothing stored; a PATCH of an
    existing template is refused the same way and leaves it unchanged."""
    template_id = doors["template"]["id"]
    before = await row_counts(runtime)
    for source in sources:
        for part in parts:
            body = {"name": "攻撃", "subject": "件名", "html": "<p>本文</p>", part: source}
            response = await admin.post("/templates", json=body)
            assert part in assert_error_body(response, 422)["detail"], source
            response = await admin.patch(f"/templates/{template_id}", json={part: source})
            assert part in assert_error_body(response, 422)["detail"], source
    assert await row_counts(runtime) == before
    unchanged = (await admin.get(f"/templates/{template_id}")).json()
    assert (unchanged["subject"], unchanged["html"]) == ("お知らせ", "<p>こんにちは</p>")


async def _plant_template(runtime: Runtime, html: str) -> int:
    """A template written straight into the table, as one saved before a check existed."""
    async with runtime.sessionmaker() as session, session.begin():
        template = Template(name="古い", subject="件名", html=html, text=None)
        session.add(template)
        await session.flush()
        return template.id


@pytest.mark.parametrize("source", [SANDBOX_ESCAPES[0], RUNAWAY[1], RUNAWAY[2], RUNAWAY[9]])
async def test_a_planted_hostile_template_fails_preview_and_preflight_cleanly(
    admin: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any], source: str
) -> None:
    """The same bounds hold where a stored template is rendered: a preview is a 422, a send
    is refused by its preflight (409 with the reason), nothing is queued."""
    template_id = await _plant_template(runtime, source)
    preview = await admin.post(f"/templates/{template_id}/preview", json={})
    assert "html" in assert_error_body(preview, 422)["detail"]

    campaign = await admin.post(
        "/campaigns",
        json={"name": "罠", "list_id": doors["single"]["id"], "template_id": template_id},
    )
    assert campaign.status_code == 201
    before = await row_counts(runtime)
    sent = await admin.post(f"/campaigns/{campaign.json()['id']}/send")
    body = assert_error_body(sent, 409)
    assert any("template" in reason for reason in body["reasons"])
    after = await row_counts(runtime)
    assert after["deliveries"] == before["deliveries"] == 0


# --- imports: the acquisition record and the rows (DS-4, SG-4) ---------------------------------


@pytest.mark.parametrize(
    ("field", "hostile"),
    [
        ("provider_name", "a\r\nb"),
        ("provider_name", "a\x00b"),
        ("provider_representative", "a\u2028b"),
        ("provider_address", "a\x00b"),
        ("acquisition_circumstances", "a\x1bb"),
    ],
)
async def test_ds4_hostile_acquisition_fields_are_422_and_nothing_stored(
    admin: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any], field: str, hostile: str
) -> None:
    """DS-4: the acquisition record is kept 3 years as evidence; a control character in it is
    refused, and no row of the import is stored."""
    body = json_body(doors["list"]["id"], [{"email": "import@example.jp"}])
    body["acquisition"][field] = _inject(body["acquisition"], field, hostile)[field]
    before = await row_counts(runtime)
    response = await admin.post(
        "/imports", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert field in assert_error_body(response, 422)["detail"]
    assert await row_counts(runtime) == before


async def test_sg4_hostile_import_rows_are_reported_invalid_and_not_stored(
    admin: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any]
) -> None:
    """SG-4 at the import door: each hostile row is reported by number, none is stored; the
    good row is imported."""
    rows = [
        {"email": "good@example.jp"},
        {"email": "a\r\nbcc@example.jp"},
        {"email": "a" * 65 + "@example.jp"},
        {"email": "用户@例子.广告"},
        {"email": "x\x00@example.jp"},
        {"email": "ok2@example.jp", "name": "a\r\nBcc: v@example.com"},
    ]
    response = await admin.post(
        "/imports",
        content=json.dumps(json_body(doors["list"]["id"], rows)),
        headers={"content-type": "application/json"},
    )
    if response.status_code == 422:  # refused whole: nothing stored is also a clean answer
        assert_error_body(response, 422)
        return
    assert response.status_code == 201, response.text
    report = response.json()
    assert report["imported"] == 1
    assert sorted(item["row"] for item in report["invalid"]) == [2, 3, 4, 5, 6]
    async with runtime.sessionmaker() as session:
        emails = set((await session.scalars(select(Subscriber.email))).all())
    assert emails == {"hanako@example.jp", "good@example.jp"}


@pytest.mark.parametrize(
    "csv",
    [
        b"email,name\r\n\xff\xfe\xfa@example.jp,\x81\x00\r\n",
        b"email,name\r\ngood@example.jp,\x00\x00\x00\r\n",
        b"email,name\r\n=cmd|' /C calc'!A0@example.jp,x\r\n",
        b"\x00" * 1000,
    ],
    ids=["not-utf8-nor-sjis", "nul-name", "formula", "all-nul"],
)
async def test_hostile_csv_imports_are_4xx_or_row_errors_never_500(
    admin: httpx.AsyncClient, runtime: Runtime, doors: dict[str, Any], csv: bytes
) -> None:
    """A CSV that cannot be read is a 4xx with the error body; a row that cannot be stored is
    reported invalid; never a 500, never a NUL in the database."""
    response = await post_csv(admin, doors["list"]["id"], csv)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_error_body(response, (400, 413, 415, 422))
        return
    async with runtime.sessionmaker() as session:
        names = (await session.scalars(select(Subscriber.name))).all()
    assert not any(name and "\x00" in name for name in names)
