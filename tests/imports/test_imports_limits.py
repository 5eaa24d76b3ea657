"""DS-6: a CSV upload is bounded before it is held: columns, the length of a record and of a
header name, and every answer that quotes the file. Seen: a header of 16 million columns was
accepted and echoed back (+375 MB)."""

from __future__ import annotations

import io
import tracemalloc
from typing import Any

import httpx
import pytest

from app.errors import InvalidInput
from app.imports.csv_reader import MAX_COLUMNS, CsvUpload
from tests.imports.conftest import post_csv

SIXTEEN_MILLION_COLUMNS = b"email" + b"," * 16_000_000 + b"\r\ntaro@example.jp\r\n"


def assert_refused(response: httpx.Response, *words: str) -> str:
    assert response.status_code == 422, response.text[:300]
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == "InvalidInput"
    for word in words:
        assert word in body["detail"]
    # The answer quotes a short prefix of the file at most.
    assert len(response.content) < 1_000
    detail: str = body["detail"]
    return detail


async def test_ds6_a_header_of_16_million_columns_is_refused_not_echoed(
    admin: httpx.AsyncClient, news: dict[str, Any]
) -> None:
    response = await post_csv(admin, news["id"], SIXTEEN_MILLION_COLUMNS)
    assert_refused(response, "row 1", "longer than 1,000,000 characters")
    assert (await admin.get("/imports")).json()["items"] == []


async def test_ds6_more_columns_than_the_limit_are_refused(
    admin: httpx.AsyncClient, news: dict[str, Any]
) -> None:
    header = ",".join(["email", *(f"c{i}" for i in range(MAX_COLUMNS))])
    response = await post_csv(admin, news["id"], f"{header}\r\ntaro@example.jp\r\n".encode())
    assert_refused(response, f"{MAX_COLUMNS + 1} columns", f"at most {MAX_COLUMNS}")
    row = "taro@example.jp" + "," * MAX_COLUMNS
    response = await post_csv(admin, news["id"], f"email,name\r\n{row}\r\n".encode())
    assert_refused(response, "row 2", f"at most {MAX_COLUMNS}")


async def test_ds6_a_long_header_name_is_refused_quoting_a_prefix(
    admin: httpx.AsyncClient, news: dict[str, Any]
) -> None:
    content = ("email," + "x" * 50_000 + "\r\ntaro@example.jp,1\r\n").encode()
    detail = assert_refused(await post_csv(admin, news["id"], content), "column 2")
    assert "x" * 40 + "…" in detail


async def test_ds6_a_header_without_email_quotes_five_names_and_counts_the_rest(
    admin: httpx.AsyncClient, news: dict[str, Any]
) -> None:
    header = ",".join(f"column-{i:03d}-" + "y" * 60 for i in range(150))
    detail = assert_refused(
        await post_csv(admin, news["id"], f"{header}\r\ntaro@example.jp\r\n".encode()),
        "email column",
        "and 145 more",
    )
    assert "column-005" not in detail


async def test_ds6_a_record_spread_over_many_quoted_lines_is_bounded_too(
    admin: httpx.AsyncClient, news: dict[str, Any]
) -> None:
    # One record whose cells each hold a line break: short lines, one endless record.
    record = ",".join(['"\r\n"'] * 400_000)
    content = f"email,name\r\n{record}\r\n".encode()
    assert_refused(await post_csv(admin, news["id"], content), "row 2", "longer than")


@pytest.mark.parametrize("content", [SIXTEEN_MILLION_COLUMNS], ids=["16M columns"])
def test_ds6_the_refusal_comes_before_the_record_is_held(content: bytes) -> None:
    """Before: the reader built the 16-million-cell header (375 MB) before any check."""
    tracemalloc.start()
    with pytest.raises(InvalidInput):
        CsvUpload.open(io.BytesIO(content))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20_000_000
