"""Registered consent wordings per list, and the list setting that requires them for JSON
signups (CR-1, CC-2, CC-5; issue #10.4): the ledger records only wording a person really saw."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
from sqlalchemy import func, select

from app.models import ConsentEvent, ConsentText, Subscriber
from app.runtime import Runtime
from tests.factories import audit_entries, create_list
from tests.public.conftest import consent_wording_of

WORDING_V1 = "承諾ニュース（株式会社承諾テスト、広告を含みます）の受け取りに同意します。"
WORDING_V2 = (
    "承諾ニュース（株式会社承諾テスト、広告を含みます）のメール受信に同意します。\n"
    "利用目的：新製品のご案内"
)
FORGED = "パートナー各社からのメールを含め、あらゆる広告の受信に同意します。"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def _json_signup(
    client: httpx.AsyncClient, slug: str, email: str, wording: str
) -> httpx.Response:
    return await client.post(
        f"/subscribe/{slug}", json={"email": email, "consent": True, "consent_text": wording}
    )


async def _written(runtime: Runtime) -> tuple[int, int]:
    async with runtime.sessionmaker() as session:
        events = await session.scalar(select(func.count()).select_from(ConsentEvent))
        people = await session.scalar(select(func.count()).select_from(Subscriber))
    return int(events or 0), int(people or 0)


def _assert_unregistered(response: httpx.Response) -> None:
    assert response.status_code == 422
    body: dict[str, Any] = response.json()
    assert body["error"] == "UnregisteredWording"
    # In the list's language (Japanese here), naming the field and where wordings are registered.
    assert body["detail"].startswith("consent_text: このリストに登録された文言ではありません")
    assert "/consent-texts" in body["detail"]


async def test_cr1_single_opt_in_list_takes_only_registered_unretired_wordings_over_json(
    admin: httpx.AsyncClient,
    client: httpx.AsyncClient,
    runtime: Runtime,
    sender: dict[str, Any],
) -> None:
    weekly = await create_list(admin, sender["id"], slug="weekly", double_opt_in=False)
    # On by default where no confirmation mail follows (a single opt-in list).
    assert weekly["require_registered_wording"] is True
    assert weekly["require_registered_wording_source"] == "default"
    base = f"/lists/{weekly['id']}/consent-texts"

    # Before any wording is registered, a stranger's JSON signup with words the person never
    # saw is refused, and nothing is written.
    _assert_unregistered(await _json_signup(client, "weekly", "taro@example.jp", FORGED))
    assert await _written(runtime) == (0, 0)

    registered = await admin.post(base, json={"text": WORDING_V1, "language": "ja"})
    assert registered.status_code == 201, registered.text
    v1 = registered.json()
    assert v1["version"] == 1
    assert v1["hash"] == _sha256(WORDING_V1)
    assert v1["text"] == WORDING_V1
    assert v1["language"] == "ja"
    assert v1["accepted"] is True
    assert v1["retired_at"] is None
    v2 = (await admin.post(base, json={"text": WORDING_V2})).json()
    assert (v2["version"], v2["hash"], v2["language"]) == (2, _sha256(WORDING_V2), None)
    # The same text again: the existing registration, no new version, no new audit entry.
    again = await admin.post(base, json={"text": f"  {WORDING_V1}\n"})
    assert again.status_code == 200
    assert again.json() == v1

    ok = await _json_signup(client, "weekly", "taro@example.jp", WORDING_V1)
    assert ok.status_code == 200, ok.text
    _assert_unregistered(await _json_signup(client, "weekly", "jiro@example.jp", FORGED))
    assert await _written(runtime) == (1, 1)

    retired = await admin.post(f"{base}/1/retire")
    assert retired.status_code == 200
    assert retired.json()["accepted"] is False
    assert retired.json()["retired_at"] is not None
    assert (await admin.post(f"{base}/1/retire")).json() == retired.json()  # harmless repeat
    # A retired wording is refused for new signups; the other one is still accepted.
    _assert_unregistered(await _json_signup(client, "weekly", "jiro@example.jp", WORDING_V1))
    assert (await _json_signup(client, "weekly", "jiro@example.jp", WORDING_V2)).status_code == 200
    # Registering the retired text again does not quietly bring it back.
    revived = await admin.post(base, json={"text": WORDING_V1})
    assert revived.status_code == 409
    assert "retired" in revived.json()["detail"]

    listed = (await admin.get(base)).json()
    assert [(w["version"], w["accepted"]) for w in listed["items"]] == [(1, False), (2, True)]
    assert listed["next_cursor"] is None
    # The ledger keeps what each person agreed to, by hash: the retired wording included.
    events = (await admin.get("/consents", params={"list_id": weekly["id"]})).json()["items"]
    by_email = {e["email"]: e["consent_text_hash"] for e in events}
    assert by_email == {"taro@example.jp": _sha256(WORDING_V1), "jiro@example.jp": v2["hash"]}

    # Every change is in the audit log, with the key that made it (DS-6).
    audit = [(e.action, e.target_id, e.details) for e in await audit_entries(runtime)]
    assert [a for a in audit if a[0].startswith("consent_text.")] == [
        ("consent_text.register", str(weekly["id"]), {"version": 1, "hash": v1["hash"]}),
        ("consent_text.register", str(weekly["id"]), {"version": 2, "hash": v2["hash"]}),
        ("consent_text.retire", str(weekly["id"]), {"version": 1, "hash": v1["hash"]}),
    ]


async def test_cr1_the_hosted_form_records_its_own_wording_on_a_list_that_requires_registered(
    admin: httpx.AsyncClient,
    client: httpx.AsyncClient,
    runtime: Runtime,
    sender: dict[str, Any],
) -> None:
    """The hosted form renders its wording on the server and records that text (CC-2): the
    requirement is for wordings of pages Shodaku never sees, and does not apply to it."""
    await create_list(admin, sender["id"], slug="weekly", double_opt_in=False)
    form = await client.get("/subscribe/weekly")
    response = await client.post(
        "/subscribe/weekly",
        data={"email": "hanako@example.jp", "consent": "yes", "consent_text": FORGED},
    )
    assert response.status_code == 200
    [event] = (await admin.get("/consents")).json()["items"]
    assert event["method"] == "web_form"
    async with runtime.sessionmaker() as session:
        recorded = await session.scalar(
            select(ConsentText.text).where(ConsentText.hash == event["consent_text_hash"])
        )
    assert recorded == consent_wording_of(form.text)
    assert "株式会社承諾テスト" in (recorded or "")
    assert recorded != FORGED


async def test_cr1_the_requirement_follows_double_opt_in_until_the_operator_sets_it(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, sender: dict[str, Any]
) -> None:
    news = await create_list(admin, sender["id"])  # double opt-in: the person sees the wording
    assert (news["require_registered_wording"], news["require_registered_wording_source"]) == (
        False,
        "default",
    )
    assert (await _json_signup(client, "news", "a@example.jp", FORGED)).status_code == 202

    # Left at its default, the setting follows the list to single opt-in: on.
    path = f"/lists/{news['id']}"
    patched = (await admin.patch(path, json={"double_opt_in": False})).json()
    assert (
        patched["require_registered_wording"],
        patched["require_registered_wording_source"],
    ) == (
        True,
        "default",
    )
    _assert_unregistered(await _json_signup(client, "news", "b@example.jp", FORGED))

    # Set by the operator, it stays as set whatever double_opt_in does later.
    explicit = (await admin.patch(path, json={"require_registered_wording": False})).json()
    assert explicit["require_registered_wording_source"] == "explicit"
    for double_opt_in in (True, False):
        after = (await admin.patch(path, json={"double_opt_in": double_opt_in})).json()
        assert (after["require_registered_wording"], after["double_opt_in"]) == (
            False,
            double_opt_in,
        )
    assert (await _json_signup(client, "news", "b@example.jp", FORGED)).status_code == 200
    on = await admin.patch(path, json={"double_opt_in": True, "require_registered_wording": True})
    assert on.json()["require_registered_wording"] is True
    _assert_unregistered(await _json_signup(client, "news", "c@example.jp", FORGED))

    # null returns it to the default (off for this double opt-in list).
    reset = (await admin.patch(path, json={"require_registered_wording": None})).json()
    assert (reset["require_registered_wording"], reset["require_registered_wording_source"]) == (
        False,
        "default",
    )

    # Given at creation, it is explicit from the start.
    strict = await create_list(admin, sender["id"], slug="strict", require_registered_wording=True)
    assert (strict["require_registered_wording"], strict["require_registered_wording_source"]) == (
        True,
        "explicit",
    )
    _assert_unregistered(await _json_signup(client, "strict", "d@example.jp", FORGED))


async def test_cr1_registering_wordings_refuses_bad_input_and_read_keys(
    admin: httpx.AsyncClient,
    reader: httpx.AsyncClient,
    runtime: Runtime,
    sender: dict[str, Any],
) -> None:
    news = await create_list(admin, sender["id"])
    base = f"/lists/{news['id']}/consent-texts"
    for body in (
        {},
        {"text": ""},
        {"text": "   "},
        {"text": "a\x00b"},
        {"text": "x" * 10_001},
        {"text": WORDING_V1, "language": "fr"},
        {"text": WORDING_V1, "extra": 1},
        {"text": 5},
    ):
        response = await admin.post(base, json=body)
        assert response.status_code == 422, body
        assert set(response.json()) >= {"error", "detail"}
    assert (
        await admin.post("/lists/999/consent-texts", json={"text": WORDING_V1})
    ).status_code == 404
    assert (await admin.get("/lists/999/consent-texts")).status_code == 404
    assert (await admin.post(f"{base}/1/retire")).status_code == 404
    assert (await admin.post(f"{base}/0/retire")).status_code == 422
    forbidden = await reader.post(base, json={"text": WORDING_V1})
    assert forbidden.status_code == 403
    assert (await reader.get(base)).json() == {"items": [], "next_cursor": None}
    assert [e.action for e in await audit_entries(runtime)] == ["sender.create", "list.create"]
