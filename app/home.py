"""GET /: a small page saying what this service is, for whoever opens the bare host name."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.public.i18n import pick_lang
from app.public.pages import home_page

router = APIRouter(tags=["health"])


@router.get("/", response_class=HTMLResponse, summary="What this service is")
async def home(request: Request, lang: str | None = None) -> HTMLResponse:
    """Links to the API reference and the health check, in Japanese and English (``?lang=en``
    puts English first). It names no list, sender or person."""
    return home_page(pick_lang(lang, "ja"), request.scope.get("root_path", ""))
