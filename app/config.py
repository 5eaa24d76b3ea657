"""Settings, read from the environment with the ``SHODAKU_`` prefix (README.md, "Configuration")."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Only ever accepted with SHODAKU_ENV=dev: a key everyone can read signs nothing in production.
DEV_SECRET_KEY = "shodaku-dev-key-not-for-production"  # noqa: S105 - refused outside dev


class Environment(StrEnum):
    DEV = "dev"
    PROD = "prod"


class SmtpTls(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHODAKU_", extra="ignore")

    env: Environment = Environment.PROD
    database_url: str = "sqlite+aiosqlite:///./shodaku.db"
    # NoDecode: a plain comma-separated string, not JSON.
    secret_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Unset, links follow the host and port `shodaku serve` listens on (see cli.py).
    base_url: str = "http://127.0.0.1:8000"
    _base_url_given: bool = PrivateAttr(default=False)
    # The name this host gives in EHLO; unset, the base URL's host (see ehlo_hostname).
    ehlo_name: str | None = None

    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_tls: SmtpTls = SmtpTls.NONE
    smtp_timeout: float = 30.0
    outbox_dir: Path = Path("./var/outbox")

    send_rate: float = Field(default=0, ge=0)
    send_concurrency: int = Field(default=8, ge=1, le=256)
    send_batch_size: int = Field(default=200, ge=1, le=5000)
    send_lease_seconds: int = Field(default=300, ge=10)
    send_max_attempts: int = Field(default=8, ge=1)

    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_private_key: Path | None = None
    # One key per sending domain: "domain:selector:/path/key.pem", comma-separated.
    dkim_keys: str | None = None
    # Refuse (409 at preflight) a campaign whose From domain has no DKIM key.
    dkim_required: bool = False

    confirm_token_max_age: int = Field(default=7 * 24 * 3600, ge=60)
    # Signup abuse limits (subscription bombing); 0 turns a limit off.
    signup_limit_per_ip: int = Field(default=20, ge=0)
    signup_limit_per_address: int = Field(default=3, ge=0)
    signup_limit_window: int = Field(default=3600, ge=1)
    # Seconds a signup's answer is held, counted from its arrival, so that its timing does not
    # tell a known address from an unknown one; 0 turns it off (app/public/answer_time.py).
    signup_answer_floor: float = Field(default=0.25, ge=0, le=10)
    # Reverse proxies whose X-Forwarded-For names the client (comma-separated IPs or networks,
    # "*" for any); unset trusts none (app/forwarded.py).
    forwarded_allow_ips: str | None = None

    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    # What comes back (SG-4, OO-1): VERP envelope senders and a mailto unsubscribe address on
    # this domain, and the inbound SMTP listener that hears bounces, complaints and refusals.
    bounce_domain: str | None = Field(default=None, pattern=r"^[A-Za-z0-9.-]{1,200}$")
    inbound_host: str = "127.0.0.1"
    inbound_port: int | None = Field(default=None, ge=1, le=65535)
    inbound_max_message_bytes: int = Field(default=10_000_000, ge=10_000)
    inbound_max_connections: int = Field(default=100, ge=1)
    # An address with this many soft bounces within this many days is suppressed (SG-4).
    soft_bounce_limit: int = Field(default=3, ge=1)
    soft_bounce_days: int = Field(default=15, ge=1)
    # Japanese carriers stop accepting mail from a sender after repeated errors: their
    # addresses (these domains and their subdomains) are suppressed after fewer soft bounces.
    soft_bounce_strict_domains: str = (
        "docomo.ne.jp,ezweb.ne.jp,au.com,softbank.ne.jp,i.softbank.jp,ymobile.ne.jp,"
        "y-mobile.ne.jp,emobile.ne.jp,pdx.ne.jp,willcom.com,wcm.ne.jp,rakumail.jp"
    )
    soft_bounce_strict_limit: int = Field(default=2, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _split_keys(cls, data: object) -> object:
        if isinstance(data, dict):
            raw = data.get("secret_keys")
            if isinstance(raw, str):
                data["secret_keys"] = [k.strip() for k in raw.split(",") if k.strip()]
        return data

    @model_validator(mode="after")
    def _refuse_dev_secret_outside_dev(self) -> Self:
        if not self.secret_keys:
            if self.env is not Environment.DEV:
                raise ValueError(
                    "SHODAKU_SECRET_KEYS is not set; set it (comma-separated, newest first) "
                    "or run with SHODAKU_ENV=dev to use the development key"
                )
            self.secret_keys = [DEV_SECRET_KEY]
        elif DEV_SECRET_KEY in self.secret_keys and self.env is not Environment.DEV:
            raise ValueError("the development secret key is refused unless SHODAKU_ENV=dev")
        if any(len(k) < 16 for k in self.secret_keys) and self.env is not Environment.DEV:
            raise ValueError("every key in SHODAKU_SECRET_KEYS must be at least 16 characters")
        self._base_url_given = "base_url" in self.model_fields_set
        self.base_url = self.base_url.rstrip("/")
        self._check_base_url()
        return self

    @property
    def base_url_given(self) -> bool:
        """Whether SHODAKU_BASE_URL (or the caller) set the base URL, rather than the default."""
        return self._base_url_given

    def served_at(self, host: str, port: int) -> Settings:
        """These settings for a server listening on ``host:port``: unless SHODAKU_BASE_URL was
        given, every link in mail points at that address (a wildcard host at the loopback)."""
        if self._base_url_given:
            return self
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding it
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        served = self.model_copy(update={"base_url": f"http://{host}:{port}"})
        served.__dict__.pop("ehlo_hostname", None)
        return served

    def _check_base_url(self) -> None:
        """MH-3: RFC 8058 allows only an https URI in List-Unsubscribe, so outside development
        every link must be https; plain http is accepted for a loopback host only."""
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"SHODAKU_BASE_URL must be an absolute http(s) URL, such as "
                f"https://news.example.com (got {self.base_url!r})"
            )
        public_http = parts.scheme == "http" and not _is_loopback(parts.hostname)
        if public_http and self.env is not Environment.DEV:
            raise ValueError(
                "SHODAKU_BASE_URL must be https outside development: the unsubscribe link "
                "in List-Unsubscribe has to be an https URI (RFC 8058). Plain http is "
                "accepted only for a loopback host, or with SHODAKU_ENV=dev"
            )

    @cached_property
    def ehlo_hostname(self) -> str:
        """The EHLO name: the setting, else the public host of the base URL (an address literal
        such as ``[127.0.0.1]`` for an IP). Never the machine's own guess, which is often
        ``localhost`` and which receiving filters count against the mail."""
        if self.ehlo_name:
            return self.ehlo_name
        host = urlsplit(self.base_url).hostname or "localhost"
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host.encode("idna").decode("ascii") if not host.isascii() else host
        return f"[IPv6:{address}]" if address.version == 6 else f"[{address}]"

    @cached_property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
