"""Reading a CSV of addresses handed over by a list provider (DS-4).

A provider's file comes from a spreadsheet: UTF-8 with or without a BOM, or Shift_JIS, which
Japanese spreadsheet software still writes by default. The upload is already spooled to a
temporary file by the multipart parser; this module checks it whole (encoding, CSV syntax,
header) before anything is stored, so a broken file is a 422 and not half an import, then reads
it again a batch of rows at a time, so memory stays bounded however long the file is.

Row numbers are the spreadsheet's: the header is row 1, the first data row is row 2, and a
blank row still counts, so the number in an error is the row the operator sees in the sheet.
"""

from __future__ import annotations

import contextlib
import csv
import io
import unicodedata
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import IO, Any

from app.errors import InvalidInput

# Tried in this order: UTF-8 (a BOM, if any, is dropped) strictly, then Shift_JIS as Windows
# writes it (cp932 is Shift_JIS with the vendor characters, such as ① and ㈱, that real files
# contain). Pure ASCII decodes as both, identically.
ENCODINGS = ("utf-8-sig", "cp932")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

# Header names, compared after NFKC (full-width letters typed with an IME become ASCII),
# trimming and lower-casing.
HEADER_ALIASES = {
    "email": "email",
    "e-mail": "email",
    "email address": "email",
    "mail": "email",
    "メールアドレス": "email",
    "メール": "email",
    "eメール": "email",
    "e-mailアドレス": "email",
    "name": "name",
    "氏名": "name",
    "名前": "name",
    "お名前": "name",
}
# Columns that, when filled, make the row carry consent evidence; see the import schemas.
CONSENT_COLUMNS = frozenset(
    {
        "basis",
        "method",
        "obtained_at",
        "sender_id",
        "consent_text",
        "source_url",
        "ip",
        "user_agent",
    }
)
EVIDENCE_PREFIX = "evidence."

MAX_ROWS = 1_000_000
# DS-6: a file is read a record at a time, and a record is refused before it is built when it
# passes these (a header of 16 million empty columns took 375 MB and was echoed back whole).
MAX_COLUMNS = 200
MAX_RECORD_CHARS = 1_000_000
MAX_HEADER_CHARS = 100
# How much of the header an error quotes.
_QUOTED_CELLS = 5
_QUOTED_CHARS = 40


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One row as given, before validation. ``number`` is the row number reported back."""

    number: int
    data: Any


@dataclass(frozen=True, slots=True)
class Columns:
    """Where each known field sits in a record, from the header row."""

    email: int
    name: int | None = None
    consent: dict[str, int] = field(default_factory=dict)
    evidence: dict[str, int] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def _header_key(cell: str) -> str:
    return unicodedata.normalize("NFKC", cell).strip().lower()


def read_header(cells: list[str]) -> Columns:
    """Map the header row to fields; InvalidInput if there is no email column or a field is
    named twice. Columns Shodaku does not know are ignored (and reported), never stored: a
    provider's sheet may hold items this sender has no business keeping."""
    positions: dict[str, int] = {}
    consent: dict[str, int] = {}
    evidence: dict[str, int] = {}
    ignored: list[str] = []

    def place(target: dict[str, int], key: str, index: int, shown: str) -> None:
        if key in target:
            raise InvalidInput(
                f"file: the header names {shown} twice (columns {target[key] + 1} and {index + 1})."
            )
        target[key] = index

    if len(cells) > MAX_COLUMNS:
        raise InvalidInput(
            f"file: the header has {len(cells):,} columns; at most {MAX_COLUMNS} are accepted."
        )
    for index, cell in enumerate(cells):
        if len(cell) > MAX_HEADER_CHARS:
            raise InvalidInput(
                f"file: header column {index + 1} is longer than {MAX_HEADER_CHARS} "
                f"characters ({_quote(cell)})."
            )
        key = _header_key(cell)
        if not key:
            continue
        if key in HEADER_ALIASES:
            place(positions, HEADER_ALIASES[key], index, HEADER_ALIASES[key])
        elif key in CONSENT_COLUMNS:
            place(consent, key, index, key)
        elif key.startswith(EVIDENCE_PREFIX) and len(key) > len(EVIDENCE_PREFIX):
            name = key[len(EVIDENCE_PREFIX) :]
            place(evidence, name, index, key)
        else:
            ignored.append(cell.strip())
    if "email" not in positions:
        named = [_quote(c.strip()) for c in cells if c.strip()]
        found = ", ".join(named[:_QUOTED_CELLS]) or "nothing"
        if len(named) > _QUOTED_CELLS:
            found += f" and {len(named) - _QUOTED_CELLS} more"
        raise InvalidInput(
            "file: the first row must be a header naming an email column (email or "
            f"メールアドレス); it holds: {found}."
        )
    return Columns(
        email=positions["email"],
        name=positions.get("name"),
        consent=consent,
        evidence=evidence,
        ignored=ignored,
    )


def _quote(cell: str) -> str:
    # An error quotes the file's own text: a short prefix of it, never the whole (DS-6).
    return cell if len(cell) <= _QUOTED_CHARS else cell[:_QUOTED_CHARS] + "…"


def _evidence_value(text: str) -> Any:
    # A sheet has no booleans; evidence such as no_refusal_notice must be a true boolean.
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def row_data(columns: Columns, cells: list[str]) -> dict[str, Any] | None:
    """The row as the JSON door would give it (``{email, name?, consent?}``), or None for a
    blank row. Empty cells are left out, so a missing value is reported as missing."""
    if not any(cell.strip() for cell in cells):
        return None

    def cell(index: int) -> str:
        return cells[index].strip() if index < len(cells) else ""

    data: dict[str, Any] = {"email": cell(columns.email)}
    if columns.name is not None and cell(columns.name):
        data["name"] = cell(columns.name)
    consent: dict[str, Any] = {k: cell(i) for k, i in columns.consent.items() if cell(i)}
    evidence = {k: _evidence_value(cell(i)) for k, i in columns.evidence.items() if cell(i)}
    if evidence:
        consent["evidence"] = evidence
    if consent:
        data["consent"] = consent
    return data


class CsvUpload:
    """A spooled CSV upload: checked whole by :meth:`open`, then read by :meth:`batches`."""

    def __init__(self, file: IO[bytes], encoding: str, columns: Columns, rows: int) -> None:
        self._file = file
        self.encoding = encoding
        self.columns = columns
        self.rows = rows

    @classmethod
    def open(cls, file: IO[bytes]) -> CsvUpload:
        """Detect the encoding and check the whole file: every byte decodes, the CSV parses,
        the header names an email column, there is at least one data row. Blocking file I/O:
        call it in a thread. InvalidInput, naming the problem, if the file cannot be read."""
        file.seek(0)
        start = file.read(4)
        if start.startswith(UTF16_BOMS):
            raise InvalidInput(
                "file: UTF-16 text is not supported; save the sheet as CSV (UTF-8 or Shift_JIS)."
            )
        if not start:
            raise InvalidInput("file: the file is empty.")
        for encoding in ENCODINGS:
            try:
                columns, rows = _scan(file, encoding)
            except UnicodeDecodeError:
                continue
            return cls(file, encoding, columns, rows)
        raise InvalidInput(
            "file: the file is neither UTF-8 nor Shift_JIS (cp932) text; save the sheet as "
            "CSV UTF-8."
        )

    def batches(self, size: int) -> Generator[list[SourceRow], None, None]:
        """The data rows, ``size`` at a time, in file order. Blocking file I/O: advance it in a
        thread."""
        with _text(self._file, self.encoding) as text:
            lines = _BoundedLines(text)
            records = csv.reader(lines)
            next(records)  # the header, checked by open()
            batch: list[SourceRow] = []
            for number, cells in enumerate(records, start=2):
                lines.record_done()
                data = row_data(self.columns, cells)
                if data is None:
                    continue
                batch.append(SourceRow(number, data))
                if len(batch) >= size:
                    yield batch
                    batch = []
            if batch:
                yield batch


class _text:
    """A text view of the binary file that leaves the file open when done (the caller owns
    it), from its beginning."""

    def __init__(self, file: IO[bytes], encoding: str) -> None:
        file.seek(0)
        self._wrapper = io.TextIOWrapper(
            file,
            encoding=encoding,
            errors="strict",
            newline="",
        )

    def __enter__(self) -> io.TextIOWrapper:
        return self._wrapper

    def __exit__(self, *_exc: object) -> None:
        with contextlib.suppress(ValueError):  # the file was closed already
            self._wrapper.detach()


class _BoundedLines:
    """The lines of the text given to ``csv.reader``, which asks for them one at a time while
    it builds a record: a record (one line, or several in quotes) longer than
    :data:`MAX_RECORD_CHARS` is refused while it is read, before the reader holds it whole
    (DS-6). ``record_done`` is called after each record the reader yields."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self._chars = 0
        self.records = 0

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        line = self._text.readline(MAX_RECORD_CHARS + 1)
        if not line:
            raise StopIteration
        self._chars += len(line)
        if self._chars > MAX_RECORD_CHARS:
            raise InvalidInput(
                f"file: row {self.records + 1} is longer than {MAX_RECORD_CHARS:,} characters."
            )
        return line

    def record_done(self) -> None:
        self._chars = 0
        self.records += 1


def _scan(file: IO[bytes], encoding: str) -> tuple[Columns, int]:
    """Read the whole file once in ``encoding``: the header, and how many data rows follow."""
    with _text(file, encoding) as text:
        lines = _BoundedLines(text)
        records = csv.reader(lines)
        number = 0
        try:
            header = next(records, None)
            lines.record_done()
            number = 1
            if header is None:
                raise InvalidInput("file: the file is empty.")
            columns = read_header(header)
            rows = 0
            for number, cells in enumerate(records, start=2):
                lines.record_done()
                if len(cells) > MAX_COLUMNS:
                    raise InvalidInput(
                        f"file: row {number} has {len(cells):,} columns; at most "
                        f"{MAX_COLUMNS} are accepted."
                    )
                if any(cell.strip() for cell in cells):
                    rows += 1
                    if rows > MAX_ROWS:
                        raise InvalidInput(
                            f"file: more than {MAX_ROWS:,} rows; split the file into several "
                            "imports."
                        )
        except csv.Error as exc:
            raise InvalidInput(f"file: row {number + 1}: {exc}.") from None
    if rows == 0:
        raise InvalidInput("file: the header is there but no data row follows it.")
    return columns, rows
