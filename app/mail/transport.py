"""How mail leaves: a pool of SMTP connections, or ``.eml`` files when no SMTP is configured.

A send is split in two steps, ``start`` (MAIL FROM and RCPT TO: the SMTP transaction has begun)
and ``finish`` (DATA), so that the worker can begin transactions while it holds the delivery rows
locked and an opt-out can never be answered between its last check and the transaction (SG-2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol

import aiosmtplib

from app.config import Settings, SmtpTls

log = logging.getLogger(__name__)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff after a transient failure: 30 s, 1 min, 2 min, … at most 6 h."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 6 * 3600))


class SendFailure(Exception):
    """A message could not be sent. ``permanent`` failures are not retried."""

    def __init__(self, code: int | None, message: str, *, permanent: bool) -> None:
        super().__init__(f"{code or '-'} {message}")
        self.code = code
        self.message = message
        self.permanent = permanent

    @property
    def unknown_recipient(self) -> bool:
        return False

    @property
    def reply(self) -> str:
        return f"{self.code or '-'} {self.message}".strip()


class RecipientRefused(SendFailure):
    """The server refused the recipient at RCPT."""

    @property
    def unknown_recipient(self) -> bool:
        """A 5xx refusal at RCPT: the mailbox does not exist, a hard bounce (SG-4)."""
        return self.permanent and self.code in (550, 551, 553)


def _failure(exc: BaseException) -> SendFailure:
    if isinstance(exc, SendFailure):
        return exc
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return RecipientRefused(exc.code, exc.message, permanent=exc.code >= 500)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return SendFailure(exc.code, exc.message, permanent=exc.code >= 500)
    # Connection refused, reset, timed out: the server is unreachable for now.
    return SendFailure(None, f"{type(exc).__name__}: {exc}"[:500], permanent=False)


class Connection(Protocol):
    async def start(self, envelope_from: str, recipient: str) -> None: ...

    async def finish(self, message: bytes) -> str: ...

    async def abort(self) -> None: ...


class Transport(Protocol):
    def connection(self) -> contextlib.AbstractAsyncContextManager[Connection]: ...

    async def send(self, envelope_from: str, recipient: str, message: bytes) -> str: ...

    async def close(self) -> None: ...


class _SmtpConnection:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: aiosmtplib.SMTP | None = None
        self.in_transaction = False

    async def _ensure(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        s = self._settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password,
            use_tls=s.smtp_tls is SmtpTls.TLS,
            start_tls=s.smtp_tls is SmtpTls.STARTTLS,
            timeout=s.smtp_timeout,
        )
        await client.connect()
        self._client = client
        return client

    async def start(self, envelope_from: str, recipient: str) -> None:
        try:
            client = await self._ensure()
            if self.in_transaction:
                await self.abort()
            await client.mail(envelope_from)
            self.in_transaction = True
            await client.rcpt(recipient)
        except Exception as exc:
            failure = _failure(exc)
            await self._after_failure(failure)
            raise failure from exc

    async def finish(self, message: bytes) -> str:
        client = self._client
        if client is None or not self.in_transaction:
            raise SendFailure(None, "no SMTP transaction in progress", permanent=False)
        try:
            response = await client.data(message)
        except Exception as exc:
            failure = _failure(exc)
            await self._after_failure(failure)
            raise failure from exc
        self.in_transaction = False
        return f"{response.code} {response.message}"

    async def abort(self) -> None:
        if self._client is not None and self._client.is_connected and self.in_transaction:
            try:
                await self._client.rset()
            except Exception:
                await self.close()
        self.in_transaction = False

    async def _after_failure(self, failure: SendFailure) -> None:
        if failure.code is None:
            await self.close()  # the connection itself is in doubt
        else:
            await self.abort()

    async def close(self) -> None:
        client, self._client = self._client, None
        self.in_transaction = False
        if client is not None:
            with contextlib.suppress(Exception):
                if client.is_connected:
                    await asyncio.wait_for(client.quit(), timeout=2)
            with contextlib.suppress(Exception):
                client.close()


class SmtpTransport:
    """A pool of up to ``SHODAKU_SEND_CONCURRENCY`` SMTP connections, opened on demand and
    re-used across messages."""

    def __init__(self, settings: Settings, size: int | None = None) -> None:
        self._settings = settings
        self._size = size or settings.send_concurrency
        self._idle: asyncio.LifoQueue[_SmtpConnection] = asyncio.LifoQueue()
        self._slots = asyncio.Semaphore(self._size)
        self._all: list[_SmtpConnection] = []

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        await self._slots.acquire()
        try:
            try:
                conn = self._idle.get_nowait()
            except asyncio.QueueEmpty:
                conn = _SmtpConnection(self._settings)
                self._all.append(conn)
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    await conn.abort()
                self._idle.put_nowait(conn)
        finally:
            self._slots.release()

    async def send(self, envelope_from: str, recipient: str, message: bytes) -> str:
        async with self.connection() as conn:
            await conn.start(envelope_from, recipient)
            return await conn.finish(message)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()
        self._all.clear()
        while not self._idle.empty():
            self._idle.get_nowait()


@dataclass
class _FileConnection:
    directory: Path
    recipient: str | None = None

    async def start(self, envelope_from: str, recipient: str) -> None:
        self.recipient = recipient

    async def finish(self, message: bytes) -> str:
        name = f"{uuid.uuid4().hex}.eml"
        tmp = self.directory / f".{name}.tmp"
        # Written whole, then renamed, so a reader never sees half a message.
        await asyncio.to_thread(_write_atomically, tmp, self.directory / name, message)
        self.recipient = None
        return f"250 written {name}"

    async def abort(self) -> None:
        self.recipient = None


def _write_atomically(tmp: Path, final: Path, data: bytes) -> None:
    tmp.write_bytes(data)
    os.replace(tmp, final)


class FileTransport:
    """Development transport: each message becomes ``<outbox_dir>/<uuid>.eml``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        self.directory.mkdir(parents=True, exist_ok=True)
        yield _FileConnection(self.directory)

    async def send(self, envelope_from: str, recipient: str, message: bytes) -> str:
        async with self.connection() as conn:
            await conn.start(envelope_from, recipient)
            return await conn.finish(message)

    async def close(self) -> None:
        return None


def make_transport(settings: Settings) -> Transport:
    if settings.smtp_host:
        return SmtpTransport(settings)
    return FileTransport(settings.outbox_dir)
