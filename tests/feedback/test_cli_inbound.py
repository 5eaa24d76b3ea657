"""``shodaku inbound`` as an operator runs it: it needs the bounce domain, listens, refuses a
recipient that is not one of its addresses at RCPT, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiosmtplib
import pytest

from tests.processes import SHODAKU, _env, _run
from tests.smtp import free_port


@pytest.fixture
def migrated(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'inbound.db'}"
    result = _run(["migrate"], _env(SHODAKU_ENV="dev", SHODAKU_DATABASE_URL=url), tmp_path)
    assert result.returncode == 0, result.stderr
    return url


def test_inbound_without_a_bounce_domain_exits_2_saying_what_to_set(migrated: str, tmp_path: Path):
    result = _run(["inbound"], _env(SHODAKU_ENV="dev", SHODAKU_DATABASE_URL=migrated), tmp_path)
    assert result.returncode == 2
    assert "SHODAKU_BOUNCE_DOMAIN" in result.stderr


async def test_inbound_listens_refuses_strangers_at_rcpt_and_stops_on_sigterm(
    migrated: str, tmp_path: Path
):
    port = free_port()
    env = _env(
        SHODAKU_ENV="dev",
        SHODAKU_DATABASE_URL=migrated,
        SHODAKU_BOUNCE_DOMAIN="bounces.example.test",
    )
    process = await asyncio.create_subprocess_exec(
        str(SHODAKU),
        "inbound",
        "--port",
        str(port),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=5)
        for _ in range(100):
            try:
                await client.connect()
                break
            except (aiosmtplib.SMTPConnectError, OSError):
                assert process.returncode is None, "shodaku inbound stopped"
                await asyncio.sleep(0.1)
        else:
            pytest.fail("shodaku inbound did not listen")
        await client.ehlo()
        await client.mail("")
        for stranger in (
            "root@bounces.example.test",
            "bounce+d1-aaaaaaaaaaaaaaaa@bounces.example.test",
            "someone@elsewhere.example",
        ):
            with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
                await client.rcpt(stranger)
            assert refused.value.code == 550
        await client.quit()
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err_bytes = await asyncio.wait_for(process.communicate(), timeout=20)
    err = err_bytes.decode()
    assert process.returncode == 0, err
    assert "inbound SMTP listener" in err
    assert "bounce+" not in err  # no token in the log (DS-6)
