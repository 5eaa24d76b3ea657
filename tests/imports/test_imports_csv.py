"""POST /imports as multipart/form-data with a CSV file (DS-4): the encodings Japanese
spreadsheets write, spreadsheet row numbers in errors, bad files refused whole, and batches
that each commit with the record's counts."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from app.imports import repository as imports_repo
from app.imports import service as imports_service
from app.models import ConsentEvent, ImportItem, ListImport, Subscriber
from app.subscriptions.repository import GateVerdict
from tests.factories import gate
from tests.imports.conftest import audit_of, counts, items_of, post_csv, subscriber


def sheet(sender_id: int) -> str:
    """A provider's sheet: Japanese headers and names (with ① and ㈱, which only cp932 of the
    Shift_JIS family holds), an ignored column, a blank row, one row with consent evidence."""
    return (
        "メールアドレス,氏名,会社名,basis,method,obtained_at,sender_id,"
        "evidence.transaction_ref,evidence.transaction_date\r\n"
        "yamada@example.jp,山田 花子,㈱山田商店,,,,,,\r\n"
        "suzuki@example.jp,鈴木 一郎①,鈴木工業,,,,,,\r\n"
        ",,,,,,,,\r\n"
        f"sato@example.jp,佐藤 次郎,佐藤物産,business_relationship,web_form,"
        f"2026-10-01T09:00:00+09:00,{sender_id},注文-0042,2026-09-30\r\n"
    )


ENCODINGS = {
    "utf-8": lambda text: text.encode("utf-8"),
    "utf-8 with BOM": lambda text: text.encode("utf-8-sig"),
    "shift_jis (cp932)": lambda text: text.encode("cp932"),
}


@pytest.mark.parametrize("encoding", list(ENCODINGS))
async def test_ds4_csv_in_utf8_utf8_bom_and_shift_jis_import_identically(
    admin, runtime, sender, news, encoding
):
    content = ENCODINGS[encoding](sheet(sender["id"]))
    response = await post_csv(admin, news["id"], content)
    assert response.status_code == 201, response.text
    report = response.json()
    assert {k: report[k] for k in ("imported", "consented", "unconsented", "invalid")} == {
        "imported": 3,
        "consented": 1,
        "unconsented": 2,
        "invalid": [],
    }
    assert report["ignored_columns"] == ["会社名"]
    names = {}
    for email in ("yamada@example.jp", "suzuki@example.jp", "sato@example.jp"):
        person = await subscriber(runtime, email)
        assert person is not None
        names[email] = person.name
    assert names == {
        "yamada@example.jp": "山田 花子",
        "suzuki@example.jp": "鈴木 一郎①",
        "sato@example.jp": "佐藤 次郎",
    }
    items = await items_of(runtime, report["import_id"])
    # Spreadsheet row numbers: the header is row 1, the blank row 4 still counts.
    assert {e: (i.row_number, i.outcome) for e, i in items.items()} == {
        "yamada@example.jp": (2, "unconsented"),
        "suzuki@example.jp": (3, "unconsented"),
        "sato@example.jp": (5, "consented"),
    }
    async with runtime.sessionmaker() as session:
        event = await session.get(ConsentEvent, items["sato@example.jp"].consent_event_id)
    assert event is not None
    assert event.evidence["transaction_ref"] == "注文-0042"
    assert event.evidence["original_method"] == "web_form"
    sato = await subscriber(runtime, "sato@example.jp")
    assert sato is not None
    assert await gate(runtime, sato.id, news["id"]) is GateVerdict.MAILABLE


async def test_ds4_csv_invalid_rows_are_reported_by_spreadsheet_row_and_valid_rows_import(
    admin, runtime, sender, news
):
    """SG-4, CC-4: a bad address or incomplete evidence refuses that row only, naming it."""
    content = (
        "email,name,basis,method,obtained_at,sender_id,evidence.transaction_ref\n"
        "good1@example.jp,一,,,,,\n"
        "not an address,二,,,,,\n"
        ",名前だけ,,,,,\n"
        f"short@example.jp,三,business_relationship,api,2026-10-01T00:00:00Z,{sender['id']},T-1\n"
        "GOOD1@example.jp,重複,,,,,\n"
        "good2@example.jp,四,,,,,\n"
    ).encode()
    response = await post_csv(admin, news["id"], content)
    assert response.status_code == 201, response.text
    report = response.json()
    errors = {e["row"]: e["error"] for e in report["invalid"]}
    assert sorted(errors) == [3, 4, 5, 6]
    assert errors[3].startswith("email: not a valid email address")
    assert errors[4] == "email: required"
    assert "evidence.transaction_date: Field required" in errors[5]  # CC-4, the field named
    assert "row 2" in errors[6]  # the duplicate names the row that was used
    assert (report["imported"], report["unconsented"], report["invalid_count"]) == (2, 2, 4)
    assert set(await items_of(runtime, report["import_id"])) == {
        "good1@example.jp",
        "good2@example.jp",
    }
    assert await subscriber(runtime, "short@example.jp") is None


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"", "empty"),
        ("名前,電話\n山田,03\n".encode("cp932"), "email column"),
        (b"email\n", "no data row"),
        ("email,name\na@example.jp,x\n".encode("utf-16"), "UTF-16"),
        (b"email,name\na@example.jp,\x81\xff\xfe\n", "neither UTF-8 nor Shift_JIS"),
        (b"email,email\na@example.jp,b@example.jp\n", "twice"),
    ],
)
async def test_ds4_an_unreadable_file_is_422_and_nothing_is_stored(
    admin, runtime, news, content, detail
):
    response = await post_csv(admin, news["id"], content)
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidInput"
    assert response.json()["detail"].startswith("file: ")
    assert detail in response.json()["detail"]
    assert set((await counts(runtime)).values()) == {0}


async def test_ds4_form_fields_missing_or_unknown_are_422_naming_them(admin, runtime, news):
    content = b"email\na@example.jp\n"
    fields_without = {"provider_representative": "", "items": " , "}
    response = await post_csv(admin, news["id"], content, **fields_without)
    assert response.status_code == 422
    assert "provider_representative" in response.json()["detail"]
    assert "items" in response.json()["detail"]

    no_file = await admin.post(
        "/imports", data={"provider_name": "x"}, files={"other": ("a.csv", b"email\n", "text/csv")}
    )
    assert no_file.status_code == 422
    assert "file" in no_file.json()["detail"]
    assert "acquisition_circumstances" in no_file.json()["detail"]

    typo = await post_csv(admin, news["id"], content, provider="株式会社")
    assert typo.status_code == 422
    assert "provider: Extra inputs are not permitted" in typo.json()["detail"]
    assert set((await counts(runtime)).values()) == {0}


async def test_ds4_form_items_accept_japanese_separators(admin, runtime, news):
    response = await post_csv(
        admin, news["id"], b"email\na@example.jp\n", items="メール、氏名，住所"
    )
    assert response.status_code == 201, response.text
    record = (await admin.get(f"/imports/{response.json()['import_id']}")).json()
    assert record["acquisition"]["items"] == ["メール", "氏名", "住所"]


async def test_ds4_a_2000_row_csv_imports_in_batches_and_duplicates_across_batches_are_caught(
    admin, runtime, news
):
    lines = ["email,name"] + [f"user{i:05d}@example.jp,利用者{i}" for i in range(2000)]
    lines[1500] = "user00010@example.jp,重複"  # row 1501 repeats row 12, in the next batch
    response = await post_csv(admin, news["id"], ("\n".join(lines) + "\n").encode("cp932"))
    assert response.status_code == 201, response.text
    report = response.json()
    assert (report["rows"], report["imported"], report["invalid_count"]) == (2000, 1999, 1)
    assert report["invalid"][0]["row"] == 1501
    assert "row 12" in report["invalid"][0]["error"]
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Subscriber)) == 1999
        assert await session.scalar(select(func.count()).select_from(ImportItem)) == 1999
        record = await session.get(ListImport, report["import_id"])
    assert record is not None
    assert record.counts["imported"] == 1999
    assert record.counts["state"] == "complete"


async def test_ds4_a_failing_batch_leaves_earlier_batches_committed_and_counted(
    admin, runtime, news, monkeypatch
):
    """An unexpected error in the third batch: the two committed batches stand, whole, and the
    record says so; running the same file again completes it without duplicates."""
    monkeypatch.setattr(imports_service, "BATCH_SIZE", 10)
    real_add_items = imports_repo.add_items
    calls = 0

    async def failing_on_third(session: Any, items: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("disk on fire")
        await real_add_items(session, items)

    monkeypatch.setattr(imports_repo, "add_items", failing_on_third)
    content = ("email\n" + "".join(f"p{i:02d}@example.jp\n" for i in range(35))).encode()
    with pytest.raises(RuntimeError, match="disk on fire"):
        await post_csv(admin, news["id"], content)

    async with runtime.sessionmaker() as session:
        record = (await session.scalars(select(ListImport))).one()
        stored = await session.scalar(select(func.count()).select_from(Subscriber))
        items = await session.scalar(select(func.count()).select_from(ImportItem))
    assert record.counts["state"] == "failed"
    assert (record.counts["rows"], record.counts["imported"]) == (20, 20)
    assert stored == items == 20
    failed_audit = await audit_of(runtime, "import.create")
    assert failed_audit[-1].details["state"] == "failed"

    monkeypatch.setattr(imports_repo, "add_items", real_add_items)
    again = await post_csv(admin, news["id"], content)
    assert again.status_code == 201, again.text
    assert again.json()["imported"] == 35
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Subscriber)) == 35
