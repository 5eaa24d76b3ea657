"""How exports are written (CR-3): CSV that spreadsheet software opens safely, and JSON arrays,
both streamed one batch of records at a time so memory stays bounded however long the export.

Shared by the consent ledger export and the campaign compliance report.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

Record = Mapping[str, Any]

# A spreadsheet would run a cell starting with these as a formula; exported text comes partly
# from the public (a user agent, a source URL, a note), so such cells get an apostrophe first.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def plain(value: Any) -> Any:
    """A value as exports write it: timestamps in ISO 8601, everything else as stored."""
    return value.isoformat() if isinstance(value, datetime) else value


def csv_cell(value: Any) -> Any:
    """One CSV cell: JSON objects as JSON text; text that a spreadsheet would run as a formula
    is prefixed with an apostrophe (formula injection)."""
    if value is None or type(value) is int:
        return value
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


async def csv_stream(
    columns: Sequence[str], batches: AsyncIterator[Sequence[Record]]
) -> AsyncIterator[bytes]:
    """CSV with a header row, one chunk per batch. A BOM first, so that spreadsheet software
    opens the Japanese text as UTF-8."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(columns)
    async for records in batches:
        for record in records:
            writer.writerow([csv_cell(record[c]) for c in columns])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue().encode()


async def json_array_stream(batches: AsyncIterator[Sequence[Record]]) -> AsyncIterator[bytes]:
    """One JSON array, one object per record, one chunk per batch."""
    separator = "\n"
    yield b"["
    async for records in batches:
        chunk = []
        for record in records:
            chunk.append(separator + json.dumps(record, ensure_ascii=False))
            separator = ",\n"
        yield "".join(chunk).encode()
    yield b"\n]\n"
