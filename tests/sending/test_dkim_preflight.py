"""The send preflight says when a sender's From domain has no DKIM key (MH-3, DMARC): a warning
in the 202 answer, or a 409 reason where SHODAKU_DKIM_REQUIRED is on."""

from __future__ import annotations

from typing import Any

import pytest

from app.config import Settings
from tests.factories import consent, make_world


@pytest.fixture(params=[False, True], ids=["dkim-optional", "dkim-required"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    return settings.model_copy(update={"dkim_required": request.param})


async def test_preflight_names_a_from_domain_without_a_dkim_key(
    admin: Any, runtime: Any, settings: Settings
) -> None:
    world = await make_world(runtime)
    await consent(runtime, world.list_id, "hanako@example.jp")
    created = await admin.post(
        "/campaigns",
        json={"name": "12月号", "list_id": world.list_id, "template_id": world.template_id},
    )
    assert created.status_code == 201
    sent = await admin.post(f"/campaigns/{created.json()['id']}/send")
    if settings.dkim_required:
        assert sent.status_code == 409
        [reason] = sent.json()["reasons"]
        assert "no DKIM key for the sender's From domain shodaku.example" in reason
        assert (await admin.get(f"/campaigns/{created.json()['id']}")).json()["status"] == "draft"
    else:
        assert sent.status_code == 202
        [warning] = sent.json()["warnings"]
        assert "no DKIM key for the sender's From domain shodaku.example" in warning
