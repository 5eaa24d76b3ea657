"""The service's own pages: what a newcomer finds at / and at the API reference, offline."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.async_api import Route, async_playwright

from app.config import Settings
from app.main import create_app
from tests.conftest import wait_for
from tests.smtp import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    # These pages read no table: SQLite alone is enough.
    path = tmp_path / "shodaku.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


async def test_root_says_what_the_service_is_in_both_languages(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    body = page.text
    assert '<html lang="ja">' in body
    for href in ('href="/docs"', 'href="/redoc"', 'href="/healthz"'):
        assert href in body
    assert "Shodaku メール配信サーバー" in body
    assert "Shodaku newsletter server" in body
    # Japanese first by default; ?lang=en puts English first.
    assert body.index("メール配信サーバー") < body.index("newsletter server")
    english = (await client.get("/", params={"lang": "en"})).text
    assert '<html lang="en">' in english
    assert english.index("newsletter server") < english.index("メール配信サーバー")
    assert page.headers["cache-control"] == "no-store"


async def test_api_reference_pages_load_nothing_from_another_host(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/docs", "/redoc"):
        page = await client.get(path)
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)""", page.text)
        assert urls, path
        for url in urls:
            assert not url.startswith(("http:", "https:", "//")), (path, url)
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url
        assert "fonts.googleapis" not in page.text
        assert "cdn.jsdelivr" not in page.text


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium): browser test not run")
    return CHROMIUM


@pytest.fixture
async def live_base_url(chromium: Path, settings: Settings) -> AsyncIterator[str]:
    port = free_port()
    app = create_app(settings, run_outbox=False, run_sender=False)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, lifespan="on", log_level="warning", access_log=False
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started or serving.done())
        if serving.done():
            serving.result()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


@pytest.mark.browser
async def test_api_reference_renders_in_a_browser_with_every_other_host_blocked(
    chromium: Path, live_base_url: str
) -> None:
    blocked: list[str] = []

    async def only_this_server(route: Route) -> None:
        if route.request.url.startswith(live_base_url + "/"):
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page()
            await page.route("**/*", only_this_server)

            await page.goto(f"{live_base_url}/docs")
            # Swagger UI has fetched the OpenAPI document and drawn the operations.
            title = page.locator(".swagger-ui .info .title")
            await title.wait_for(timeout=15000)
            assert "Shodaku" in await title.inner_text()
            await page.locator(".opblock-summary-path", has_text="/api/v1/senders").first.wait_for(
                timeout=15000
            )

            await page.goto(f"{live_base_url}/redoc")
            heading = page.locator("h1", has_text="Shodaku")
            await heading.first.wait_for(timeout=15000)
            assert await page.get_by_text("/api/v1/campaigns").count() > 0
        finally:
            await browser.close()
    assert blocked == []
