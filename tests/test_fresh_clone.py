"""The README's promise to a newcomer, kept on a fresh clone: `make serve` on a port of one's
choosing, then the curl walk-through as written, from the first key to the opt-out.

It clones this repository's HEAD (what CI tests), so uncommitted changes are not in it; it
needs git, make, curl and the package index pip uses (as `make serve` does).
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from tests.smtp import free_port

ROOT = Path(__file__).resolve().parents[1]


def _walk_through() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A walk-through with curl", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "the README has no walk-through"
    return match.group(1)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    for tool in ("git", "make", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: the fresh-clone test is not run")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    target = tmp_path / "shodaku"
    subprocess.run(
        ["git", "clone", "--quiet", "--depth", "1", f"file://{ROOT}", str(target)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return target


@pytest.fixture
def served(clone: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHODAKU_", "VIRTUAL_ENV"))}
    log = (clone.parent / "serve.log").open("wb")
    server = subprocess.Popen(
        ["make", "serve", f"PORT={port}"],
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, (clone.parent / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "make serve did not answer within 300 s"
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def test_readme_two_commands_and_walk_through_on_a_fresh_clone_and_another_port(
    clone: Path, served: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHODAKU_")}
    env["BASE"] = served
    result = subprocess.run(
        ["bash", "-c", _walk_through()],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "no API key" not in out
    assert "no confirmation link" not in out
    # The link in the mail pointed at the port actually served, and confirming worked.
    assert re.search(r"<h1>[^<]+</h1>", out), out
    texts = []
    for path in (clone / "var" / "outbox").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(("plain",))
        assert body is not None
        texts.append(str(body.get_content()))
    assert any(f"{served}/confirm/" in text for text in texts)
    assert '"status":"sending"' in out.replace(" ", "")
    assert '"suppressed":true' in out.replace(" ", "")
