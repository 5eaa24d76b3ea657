"""schemathesis against the app's own OpenAPI document: every operation, with an admin key.

Issue 5, "Bad input": zero 5xx and zero responses that break their own declared schema (status
code, content type, body, headers), for valid and invalid input alike. The app runs in-process
behind schemathesis' ASGI transport; no network. ``make test`` runs a bounded number of
examples per operation on SQLite; ``make soak`` many more, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.config import Settings
from app.main import create_app
from tests.fuzz.conftest import Target

QUICK_EXAMPLES = 10
SOAK_EXAMPLES = 300

# The document does not depend on the database: built from an app that never connects.
DOCUMENT: dict[str, Any] = create_app(
    Settings(env="dev", database_url="sqlite+aiosqlite:///unused-fuzz.db"),
    run_outbox=False,
    run_sender=False,
).openapi()
schema = schemathesis.openapi.from_dict(
    DOCUMENT, config=schemathesis.Config.from_dict({"generation": {"mode": "all"}})
)

# positive_data_acceptance expects every schema-valid request to succeed; the API also refuses
# what a JSON schema cannot say (a cursor it never issued, a list of another sender, a contact
# URL that is not http(s), an address change without a fresh opt-in): 4xx, by design.
EXCLUDED = [positive_data_acceptance]

_SETTINGS = settings(
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def _call_and_validate(case: schemathesis.Case, target: Target) -> None:
    case.call_and_validate(
        app=target.app,
        headers=target.world.headers,
        excluded_checks=EXCLUDED,
    )


@pytest.mark.parametrize("fuzz_target", ["sqlite"], indirect=True)
@schema.parametrize()
@settings(_SETTINGS, max_examples=QUICK_EXAMPLES)
def test_every_operation_answers_within_its_schema(
    case: schemathesis.Case, fuzz_target: Target
) -> None:
    """Issue 5 "Bad input": no 5xx, and every answer matches its declared schema."""
    _call_and_validate(case, fuzz_target)


@pytest.mark.soak
@schema.parametrize()
@settings(_SETTINGS, max_examples=SOAK_EXAMPLES)
def test_every_operation_answers_within_its_schema_soak(
    case: schemathesis.Case, fuzz_target: Target
) -> None:
    """The same, with many more examples, on SQLite and on PostgreSQL (``make soak``)."""
    _call_and_validate(case, fuzz_target)
