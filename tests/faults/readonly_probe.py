"""Run Shodaku against a SQLite file this process may not write, and report what it answers.

Used by ``test_sqlite_storage.py`` in a child process, because the test runner usually runs as
root and root writes through any file mode: the parent starts this without the capabilities
that let root ignore permissions (``setpriv --bounding-set -dac_override,...``), so the file's
mode binds it exactly as it binds the unprivileged user a server runs as.

    python -m tests.faults.readonly_probe DB_PATH < requests.json > answers.json

Input: ``{"requests": [{"method", "path", "headers"?, "json"?, "data"?}, ...]}``. Output:
``{"write_denied": bool, "answers": [{"status", "body", "retry_after"}, ...]}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings
from app.main import create_app
from tests.conftest import BASE_URL, TEST_KEYS


def write_denied(path: Path) -> bool:
    try:
        with path.open("r+b"):
            return False
    except PermissionError:
        return True


async def ask(db_path: Path, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    settings = Settings(
        env="dev",
        database_url=f"sqlite+aiosqlite:///{db_path}",
        secret_keys=TEST_KEYS,
        base_url=BASE_URL,
        outbox_dir=db_path.parent / "outbox",
    )
    app = create_app(settings, run_outbox=False, run_sender=False)
    # raise_app_exceptions=False: an unhandled error must show as the 500 a client would get.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("203.0.113.9", 1))
    answers = []
    try:
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            for request in requests:
                response = await client.request(
                    request["method"],
                    request["path"],
                    headers=request.get("headers"),
                    json=request.get("json"),
                    data=request.get("data"),
                )
                try:
                    body: Any = response.json()
                except ValueError:
                    body = response.text[:500]
                answers.append(
                    {
                        "status": response.status_code,
                        "body": body,
                        "retry_after": response.headers.get("retry-after"),
                    }
                )
    finally:
        await app.state.runtime.dispose()
    return answers


def main() -> None:
    db_path = Path(sys.argv[1])
    requests = json.load(sys.stdin)["requests"]
    denied = write_denied(db_path)
    answers = asyncio.run(ask(db_path, requests)) if denied else []
    json.dump({"write_denied": denied, "answers": answers}, sys.stdout)


if __name__ == "__main__":
    main()
