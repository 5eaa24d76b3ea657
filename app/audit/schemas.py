"""Response bodies of GET /audit (DS-6)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, StringConstraints

# An action (``consent.record``) or a domain (``consent``): lower-case words joined by dots.
AuditAction = Annotated[str, StringConstraints(max_length=100, pattern=r"^[a-z_]+(\.[a-z_]+)*$")]


class ApiKeyRef(BaseModel):
    """Who: the API key that made the change (its id, name and scope; never the key)."""

    id: int
    name: str | None
    scope: str | None


class AuditEntryOut(BaseModel):
    """One audited admin write or export: who, when, what, on what."""

    id: int
    occurred_at: datetime
    api_key: ApiKeyRef | None
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]
