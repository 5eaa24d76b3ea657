"""Fault tests: the suite's fixtures, with an SMTP server that can also misbehave on cue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.scripted_smtp import ScriptedSmtpServer


@pytest.fixture
def smtp_server(smtp_port: int) -> Iterator[ScriptedSmtpServer]:
    """The real aiosmtpd server of the suite (``tests.smtp``), plus per-attempt scripts."""
    server = ScriptedSmtpServer(smtp_port)
    server.start()
    yield server
    server.stop()
