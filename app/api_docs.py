"""The API's reference pages, /docs (Swagger UI) and /redoc, served with no outside host.

FastAPI's own pages load their scripts and styles from a CDN (and ReDoc its fonts from Google),
so on a machine without internet, or behind a strict proxy, they are blank. The assets come from
the ``fastapi-offline`` package, which ships the Swagger UI and ReDoc bundles; we serve them from
this application and point FastAPI's page builders at them.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
_ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
# ReDoc's bundle always draws its maker's logo from their CDN: the one request to another host
# that the pages would make. A blank inline image takes its place.
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
_BLANK_IMAGE = b"data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/>"


@functools.cache
def _redoc_bundle() -> bytes:
    return (_ASSETS_DIR / "redoc.standalone.js").read_bytes().replace(_REDOC_LOGO, _BLANK_IMAGE)


def install_api_docs(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets; the app must be built with docs_url=None."""

    @app.get(f"{ASSETS_URL}/redoc.standalone.js", include_in_schema=False)
    async def redoc_bundle() -> Response:
        return Response(_redoc_bundle(), media_type="text/javascript")

    app.mount(ASSETS_URL, StaticFiles(directory=_ASSETS_DIR), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} – API reference",
            oauth2_redirect_url=f"{root}{oauth2_redirect}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} – API reference",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
