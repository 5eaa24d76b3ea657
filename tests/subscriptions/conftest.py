"""Fixtures of the consent-domain tests."""

from __future__ import annotations

import pytest

from app.runtime import Runtime
from tests.subscriptions.world import World, build_world


@pytest.fixture
async def world(runtime: Runtime) -> World:
    """Two senders and three lists (see World), in the test's fresh database."""
    return await build_world(runtime)
