"""HTTP endpoints of /imports: lists obtained from others, with their acquisition record (DS-4);
see docs/reference.md.

POST /imports takes either a JSON body or a multipart form with a CSV ``file``; one path, so
the body is parsed here by its Content-Type rather than by FastAPI's parameter binding.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from app.api_fields import DB_ID_MAX, Cursor, Page
from app.auth.dependencies import AdminKey, ReadKey
from app.db import SessionDep
from app.deps import HasherDep, RuntimeDep
from app.errors import AppError
from app.imports import service
from app.imports.schemas import (
    MAX_JSON_ROWS,
    ImportCreate,
    ImportForm,
    ImportItemOut,
    ImportOut,
    ImportOutcome,
    ImportReport,
)

router = APIRouter(prefix="/imports", tags=["imports"])

ImportId = Annotated[int, Path(ge=1, le=DB_ID_MAX)]

# A JSON import is read whole; this bounds it (MAX_JSON_ROWS rows fit well within).
MAX_JSON_BYTES = 16 * 1024 * 1024
FORM_FIELDS = (*ImportForm.model_fields, "file")
# Separators accepted in the form's ``items`` field, Japanese ones included.
ITEM_SEPARATORS = ("、", "，", ",")


class UnsupportedMediaType(AppError):
    status_code = 415


class PayloadTooLarge(AppError):
    status_code = 413


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its $defs inlined, to sit inside the OpenAPI document."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [*FORM_FIELDS],
    "properties": {
        **{name: {"type": "string"} for name in ImportForm.model_fields},
        "list_id": {"type": "integer"},
        "received_at": {
            "type": "string",
            "description": "the date of receipt, YYYY-MM-DD, or an ISO 8601 timestamp with offset",
        },
        "items": {"type": "string", "description": "comma-separated, e.g. email,name"},
        "file": {
            "type": "string",
            "format": "binary",
            "description": "CSV, UTF-8 (with or without BOM) or Shift_JIS; a header row with "
            "email (or メールアドレス), optional name (or 氏名), and optional consent columns "
            "basis, method, obtained_at, sender_id, consent_text and evidence.<field>",
        },
    },
}

_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inline(ImportCreate.model_json_schema())},
            "multipart/form-data": {"schema": _FORM_SCHEMA},
        },
    }
}


def _errors(exc: ValidationError, *prefix: str) -> list[dict[str, Any]]:
    return [
        {**error, "loc": ("body", *prefix, *error["loc"])}
        for error in exc.errors(include_url=False, include_input=False)
    ]


async def _json_body(request: Request) -> ImportCreate:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise PayloadTooLarge(
                f"A JSON import is limited to {MAX_JSON_BYTES // (1024 * 1024)} MiB and "
                f"{MAX_JSON_ROWS:,} rows; send larger lists as a CSV file (multipart/form-data)."
            )
    try:
        return ImportCreate.model_validate_json(bytes(body))
    except ValidationError as exc:
        raise RequestValidationError(_errors(exc)) from None


def _form(form: Any) -> tuple[ImportForm, UploadFile]:
    """The acquisition record and list_id from the form fields, and the CSV file; every
    missing or unknown field named at once."""
    fields: dict[str, Any] = {k: form[k] for k in form if k in ImportForm.model_fields}
    # Unknown fields are passed on to be reported by name (extra="forbid"): a typo such as
    # "provider" must not leave provider_name silently missing.
    fields.update(dict.fromkeys(sorted(set(form.keys()) - set(FORM_FIELDS)), ""))
    if "items" in fields:
        items: list[str] = []
        for value in form.getlist("items"):
            text = str(value)
            for separator in ITEM_SEPARATORS:
                text = text.replace(separator, ",")
            items += [part.strip() for part in text.split(",") if part.strip()]
        fields["items"] = items
    errors: list[dict[str, Any]] = []
    parsed: ImportForm | None = None
    try:
        parsed = ImportForm.model_validate(fields)
    except ValidationError as exc:
        errors += _errors(exc)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        errors.append({"loc": ("body", "file"), "msg": "a CSV file is required", "type": "missing"})
    if errors or parsed is None or not isinstance(upload, UploadFile):
        raise RequestValidationError(errors)
    return parsed, upload


@router.post("", status_code=201, openapi_extra=_REQUEST_BODY)
async def create_import(
    request: Request, runtime: RuntimeDep, hasher: HasherDep, principal: AdminKey
) -> ImportReport:
    """Import a list obtained from a third party, with its acquisition record (DS-4).

    JSON: `{acquisition, list_id, rows: [{email, name?, consent?}]}`, at most 10,000 rows;
    `row` in `invalid` counts the `rows` array from 1. multipart/form-data: the acquisition
    fields and `list_id` as form fields (`items` comma-separated) and a CSV `file`; `row` is the
    spreadsheet's row number, the header being row 1 (so the first data row is row 2).

    A row's consent counts only if it names this list's sender (`consent.sender_id`, or a
    `sender_id` column) and its evidence holds what its basis needs (CC-4); other rows are
    stored as subscribers without consent and are never mailed. Suppressed addresses are
    reported and left unchanged (OO-6). The import commits a batch at a time; each committed
    batch is counted in `GET /imports/{id}`.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        data = await _json_body(request)
        return await service.import_rows(runtime.sessionmaker, hasher, principal, data)
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=len(FORM_FIELDS) + 10) as form:
            fields, upload = _form(form)
            return await service.import_csv(
                runtime.sessionmaker, hasher, principal, fields, upload.file
            )
    raise UnsupportedMediaType(
        "Send the import as application/json, or as multipart/form-data with a CSV file."
    )


@router.get("")
async def list_imports(
    session: SessionDep,
    principal: ReadKey,
    list_id: Annotated[int | None, Query(ge=1, le=DB_ID_MAX)] = None,
    cursor: Annotated[Cursor, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[ImportOut]:
    """Imports, newest first, with their acquisition records and counts."""
    records, next_cursor = await service.list_imports(
        session, principal, list_id=list_id, before_id=cursor, limit=limit
    )
    return Page[ImportOut](items=[ImportOut.of(r) for r in records], next_cursor=next_cursor)


@router.get("/{import_id}")
async def get_import(import_id: ImportId, session: SessionDep, principal: ReadKey) -> ImportOut:
    """The acquisition record and counts (DS-4)."""
    return ImportOut.of(await service.get_import(session, principal, import_id))


@router.get("/{import_id}/items")
async def list_import_items(
    import_id: ImportId,
    session: SessionDep,
    principal: ReadKey,
    outcome: Annotated[ImportOutcome | None, Query()] = None,
    cursor: Annotated[Cursor, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[ImportItemOut]:
    """The addresses the import brought, in file order, and what became of each (DS-4)."""
    items, next_cursor = await service.import_items(
        session, principal, import_id, outcome=outcome, after_id=cursor, limit=limit
    )
    return Page[ImportItemOut](items=[ImportItemOut.of(i) for i in items], next_cursor=next_cursor)
