"""Settings a deployment gets wrong at its peril, refused or derived at startup."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings

PROD_KEY = "a-production-signing-key-0123456789"


@pytest.mark.parametrize(
    "url", ["http://news.example.com", "http://203.0.113.5:8000", "http://[2001:db8::1]/"]
)
def test_mh3_production_refuses_a_public_http_base_url(url: str) -> None:
    # List-Unsubscribe must carry an https URI (RFC 8058); an http base URL would put one there.
    with pytest.raises(ValidationError, match="must be https outside development"):
        Settings(secret_keys=[PROD_KEY], base_url=url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://localhost:8300", "http://[::1]:8000"]
)
def test_production_accepts_http_on_loopback_only(url: str) -> None:
    assert Settings(secret_keys=[PROD_KEY], base_url=url).base_url == url.rstrip("/")


def test_development_accepts_http_anywhere_and_https_is_always_fine() -> None:
    assert Settings(env="dev", base_url="http://news.example.com").base_url
    assert Settings(secret_keys=[PROD_KEY], base_url="https://news.example.com/").base_url == (
        "https://news.example.com"
    )


@pytest.mark.parametrize("url", ["news.example.com", "ftp://news.example.com", "https://"])
def test_a_base_url_that_is_no_url_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="absolute http"):
        Settings(env="dev", base_url=url)


def test_links_follow_the_served_port_unless_the_base_url_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SHODAKU_BASE_URL", raising=False)
    served = Settings(env="dev").served_at("127.0.0.1", 8300)
    assert served.base_url == "http://127.0.0.1:8300"
    assert Settings(env="dev").served_at("0.0.0.0", 9000).base_url == "http://127.0.0.1:9000"  # noqa: S104
    assert Settings(env="dev").served_at("::1", 9000).base_url == "http://[::1]:9000"

    monkeypatch.setenv("SHODAKU_BASE_URL", "https://news.example.com")
    assert Settings(env="dev").served_at("127.0.0.1", 8300).base_url == "https://news.example.com"
