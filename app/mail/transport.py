"""How mail leaves: a pool of SMTP connections, or ``.eml`` files when no SMTP is configured.

A send is split in two steps, ``start`` (MAIL FROM and RCPT TO: the SMTP transaction has begun)
and ``finish`` (the message), so that the worker can begin transactions while it holds the
delivery rows locked and an opt-out can never be answered between its last check and the
transaction (SG-2).

aiosmtplib opens each connection (greeting, EHLO, STARTTLS, AUTH). When the server offers
PIPELINING (RFC 2920), as Postfix, Exim and the large providers do, the connection is then
driven by ``_Pipeline``: MAIL FROM, RCPT TO and DATA go out in one write and their three replies
come back together, and the message follows the 354. That is two round trips per message
instead of four, which is most of what a send costs: measured against smtp-sink, a bare loop
sending this way ran 2.4-3.2 times as fast as the same loop through aiosmtplib's ``sendmail``,
which sends and awaits one command at a time. A server without PIPELINING gets exactly that:
one command at a time, through aiosmtplib.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol

import aiosmtplib
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

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


class SmtpProtocolError(Exception):
    """The server's replies could not be read as SMTP: the connection is in doubt."""


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

    def connections(self, n: int) -> contextlib.AbstractAsyncContextManager[list[Connection]]: ...

    async def send(self, envelope_from: str, recipient: str, message: bytes) -> str: ...

    async def close(self) -> None: ...


_MAX_REPLY = 64 * 1024
_CONTROL = frozenset(range(0x20)) | {0x7F}


class _Pipeline(asyncio.Protocol):
    """A connection aiosmtplib has opened, taken over to pipeline commands (RFC 2920).

    Replies are parsed as they arrive and queued in order, however the server's writes are cut
    into segments, so several commands can be written at once and their replies read one by
    one. (aiosmtplib's own protocol keeps one reply at a time and drops what arrives while it
    is not waiting, so it cannot be used for this.)
    """

    def __init__(self, transport: asyncio.Transport, timeout: float) -> None:
        self._transport = transport
        self._timeout = timeout
        self._buffer = bytearray()
        self._read_up_to = 0  # the buffer's complete lines of the reply being read end here
        self._partial_lines: list[str] = []
        self._replies: deque[tuple[int, str]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: Exception | None = None
        self._writable: asyncio.Future[None] | None = None
        self.owed = 0  # replies the server still owes for what was written
        transport.set_protocol(self)

    @property
    def in_step(self) -> bool:
        """Every reply to what was written has been read: the next reply answers the next
        command. After an interruption (a cancelled wait) it would not, and the connection is
        closed instead of being used out of step."""
        return self.owed == 0 and not self._replies

    @property
    def is_connected(self) -> bool:
        return self._error is None and not self._transport.is_closing()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            while self._parse_one():
                pass
        except SmtpProtocolError as exc:
            self._fail(exc)
            self._transport.close()
            return
        if len(self._buffer) > _MAX_REPLY:
            self._fail(SmtpProtocolError("SMTP reply too long"))
            self._transport.close()
        elif self._replies:
            self._wake()

    def _parse_one(self) -> bool:
        """Move one complete (possibly multi-line) reply from the buffer to the queue.

        The lines of a reply still incomplete are kept, with where they end, so each byte is
        read once however the server cuts its writes: reading the whole buffer again on every
        segment was quadratic (a 64 KB multi-line reply sent a few bytes at a time) (DS-6)."""
        buffer, offset, lines = self._buffer, self._read_up_to, self._partial_lines
        while True:
            end = buffer.find(b"\n", offset)
            if end == -1:
                self._read_up_to = offset
                return False
            line = bytes(buffer[offset : end + 1])
            offset = end + 1
            code = line[:3]
            if not code.isdigit() or line[3:4] not in (b" ", b"-", b"\r", b"\n"):
                raise SmtpProtocolError(f"not an SMTP reply: {line[:80]!r}")
            lines.append(line[4:].strip(b" \t\r\n").decode("utf-8", "replace"))
            if line[3:4] != b"-":
                del buffer[:offset]
                self._read_up_to, self._partial_lines = 0, []
                self._replies.append((int(code), "\n".join(lines)))
                return True

    def eof_received(self) -> bool:
        self._fail(ConnectionResetError("the SMTP server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("the SMTP connection was closed"))
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def _fail(self, exc: Exception) -> None:
        if self._error is None:
            self._error = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def write(self, data: bytes, replies: int) -> None:
        """Write commands (or a message) answered by ``replies`` replies."""
        if self._error is not None:
            raise self._error
        self._transport.write(data)
        self.owed += replies

    async def drain(self) -> None:
        """Wait while the transport's buffer is full; a server that stops reading for
        ``smtp_timeout`` is a failure, not a wait for ever."""
        if self._writable is not None:
            async with asyncio.timeout(self._timeout):
                await self._writable
        if self._error is not None:
            raise self._error

    async def reply(self) -> tuple[int, str]:
        """The next reply, in the order the commands were written (``smtp_timeout`` each)."""
        while not self._replies:
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(self._timeout):
                    await self._waiter
            finally:
                self._waiter = None
        self.owed -= 1
        return self._replies.popleft()

    def close(self) -> None:
        self._transport.close()


def _on_the_wire(message: bytes) -> bytes:
    """The message as DATA carries it: CRLF line ends, lines starting with "." doubled, the
    final ".". Composed messages already have CRLF and no line starting with "." (their bodies
    are base64), which counting finds far faster than the substitutions that would do
    nothing: those were a sixth of the sender's CPU."""
    crlf = message.count(b"\r\n")
    if (
        message.count(b"\n") != crlf
        or message.count(b"\r") != crlf
        or not message.endswith(b"\r\n")
    ):
        message = normalize_message_line_endings(message)
    if message.startswith(b".") or b"\n." in message:
        message = PERIOD_REGEX.sub(b"..", message)
    return message + b".\r\n"


def _check_address(address: str) -> None:
    """A control character in an address could smuggle a command in, and the quoting of
    either client would silently cut the address at it (sending to someone else): refused."""
    if not _CONTROL.isdisjoint(map(ord, address)):
        raise SendFailure(None, "address contains a control character", permanent=True)


_NEEDS_PARSING = frozenset(' <>()",;:[]\\')


def _command_arg(address: str, *, utf8: bool) -> bytes:
    """An address as a MAIL/RCPT argument. Stored addresses are bare ``local@domain``, which
    need only the brackets; anything else goes through aiosmtplib's quoting."""
    quoted = f"<{address}>" if _NEEDS_PARSING.isdisjoint(address) else quote_address(address)
    return quoted.encode("utf-8" if utf8 else "ascii")


class _SmtpConnection:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: aiosmtplib.SMTP | None = None
        self._pipeline: _Pipeline | None = None
        self.in_transaction = False
        self._awaiting_data = False  # pipelined: DATA answered 354, the message comes next

    @property
    def _connected(self) -> bool:
        if self._pipeline is not None:
            return self._pipeline.is_connected and self._pipeline.in_step
        return self._client is not None and self._client.is_connected

    async def _ensure(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._connected:
            return self._client
        if self._client is not None:
            await self.close()
        s = self._settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password,
            use_tls=s.smtp_tls is SmtpTls.TLS,
            start_tls=s.smtp_tls is SmtpTls.STARTTLS,
            timeout=s.smtp_timeout,
            local_hostname=s.ehlo_hostname,
        )
        await client.connect()
        self._client = client
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        transport = client.protocol.transport if client.protocol is not None else None
        if client.supports_extension("pipelining") and isinstance(transport, asyncio.Transport):
            self._pipeline = _Pipeline(transport, s.smtp_timeout)
        return client

    async def start(self, envelope_from: str, recipient: str) -> None:
        _check_address(envelope_from)
        _check_address(recipient)
        try:
            if self.in_transaction:
                await self.abort()
            client = await self._ensure()
            if self._pipeline is None:
                await client.mail(envelope_from)
                self.in_transaction = True
                await client.rcpt(recipient)
            else:
                await self._start_pipelined(client, self._pipeline, envelope_from, recipient)
        except Exception as exc:
            failure = _failure(exc)
            await self._after_failure(failure)
            raise failure from exc
        except BaseException:
            await self._interrupted()
            raise

    async def _start_pipelined(
        self, client: aiosmtplib.SMTP, pipeline: _Pipeline, envelope_from: str, recipient: str
    ) -> None:
        """MAIL FROM, RCPT TO and DATA in one write; when all three are accepted the server
        waits for the message (354), which ``finish`` sends."""
        utf8 = not (envelope_from.isascii() and recipient.isascii())
        if utf8 and not client.supports_extension("smtputf8"):
            raise SendFailure(
                None, "the address needs SMTPUTF8, which the server does not offer", permanent=True
            )
        sender = _command_arg(envelope_from, utf8=utf8)
        rcpt = _command_arg(recipient, utf8=utf8)
        pipeline.write(
            b"MAIL FROM:" + sender + (b" SMTPUTF8" if utf8 else b"") + b"\r\n"
            b"RCPT TO:" + rcpt + b"\r\nDATA\r\n",
            replies=3,
        )
        self.in_transaction = True
        replies: list[tuple[int, str]] = []
        lost: Exception | None = None
        try:
            # One deadline for the three: this runs inside the send window, holding its lock.
            async with asyncio.timeout(self._settings.smtp_timeout):
                while len(replies) < 3:
                    replies.append(await pipeline.reply())
        except (OSError, TimeoutError, SmtpProtocolError) as exc:
            # A server that refuses with 421 hangs up before answering the rest: its refusal
            # is still the answer that counts.
            lost = exc
        if len(replies) == 3 and replies[2][0] == 354:
            self._awaiting_data = True
        if replies and replies[0][0] != 250:
            code, text = replies[0]
            raise SendFailure(code, text, permanent=code >= 500)
        if len(replies) > 1 and replies[1][0] not in (250, 251):
            code, text = replies[1]
            raise RecipientRefused(code, text, permanent=code >= 500)
        if lost is not None:
            raise lost
        if replies[2][0] != 354:
            code, text = replies[2]
            raise SendFailure(code, text, permanent=code >= 500)

    async def finish(self, message: bytes) -> str:
        client = self._client
        if client is None or not self.in_transaction:
            raise SendFailure(None, "no SMTP transaction in progress", permanent=False)
        try:
            if self._pipeline is None:
                response = await client.data(message)
                code, text = response.code, response.message
            else:
                code, text = await self._finish_pipelined(self._pipeline, message)
        except Exception as exc:
            failure = _failure(exc)
            await self._after_failure(failure)
            raise failure from exc
        except BaseException:
            await self._interrupted()
            raise
        self.in_transaction = False
        return f"{code} {text}"

    async def _interrupted(self) -> None:
        """Cancelled mid-command: the server's next replies answer commands nobody will read
        them for, so the connection cannot be used again."""
        await asyncio.shield(self.close())

    async def _finish_pipelined(self, pipeline: _Pipeline, message: bytes) -> tuple[int, str]:
        if not self._awaiting_data:
            raise SendFailure(None, "the server is not waiting for a message", permanent=False)
        pipeline.write(_on_the_wire(message), replies=1)
        self._awaiting_data = False
        await pipeline.drain()
        code, text = await pipeline.reply()
        if code != 250:
            self.in_transaction = False
            raise SendFailure(code, text, permanent=code >= 500)
        return code, text

    async def abort(self) -> None:
        if self.in_transaction and (
            self._awaiting_data or (self._pipeline is not None and not self._pipeline.in_step)
        ):
            # Past the 354 anything written is message text, and with replies still owed the
            # next one would not answer RSET: only closing the connection abandons it.
            await self.close()
        elif self.in_transaction and self._connected:
            try:
                if self._pipeline is not None:
                    self._pipeline.write(b"RSET\r\n", replies=1)
                    code, _ = await self._pipeline.reply()
                    if code != 250:
                        raise SmtpProtocolError(f"RSET answered {code}")
                elif self._client is not None:
                    await self._client.rset()
            except Exception:
                await self.close()
        self.in_transaction = False

    async def _after_failure(self, failure: SendFailure) -> None:
        if failure.code is None:
            await self.close()  # the connection itself is in doubt
        elif failure.code == 421:
            # "Closing transmission channel" (RFC 5321 §4.2.3): the server hangs up, and the
            # next message must not race its hang-up on this connection (aiosmtplib does the
            # same on its path).
            await self.close()
        else:
            await self.abort()

    async def close(self) -> None:
        client, self._client = self._client, None
        pipeline, self._pipeline = self._pipeline, None
        awaiting_data, self._awaiting_data = self._awaiting_data, False
        self.in_transaction = False
        if pipeline is not None:
            with contextlib.suppress(Exception):
                if pipeline.is_connected and pipeline.in_step and not awaiting_data:
                    pipeline.write(b"QUIT\r\n", replies=1)
                    async with asyncio.timeout(2):
                        await pipeline.reply()
            pipeline.close()
        elif client is not None:
            with contextlib.suppress(Exception):
                if client.is_connected:
                    await asyncio.wait_for(client.quit(), timeout=2)
        if client is not None:
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
        self._collecting = asyncio.Lock()
        self._all: list[_SmtpConnection] = []

    @contextlib.asynccontextmanager
    async def connections(self, n: int) -> AsyncIterator[list[Connection]]:
        """``n`` connections at once, for one chunk. One caller collects at a time: two senders
        in one process (procrastinate runs several jobs per worker) each holding part of the
        pool while waiting for the rest would wait for each other for ever."""
        if n > self._size:
            raise ValueError(f"{n} connections asked of a pool of {self._size}")
        async with contextlib.AsyncExitStack() as stack:
            async with self._collecting:
                held = [await stack.enter_async_context(self.connection()) for _ in range(n)]
            yield held

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


# DS-3: an outbox file's name starts with this many hex digits of the recipient's keyed hash,
# so that an erasure finds the person's files by name, without reading any file.
FILE_TAG_LENGTH = 16

# The keyed hash of a recipient's (normalised) address.
RecipientHash = Callable[[str], Awaitable[str]]


@dataclass
class _FileConnection:
    directory: Path
    recipient_hash: RecipientHash | None = None
    recipient: str | None = None

    async def start(self, envelope_from: str, recipient: str) -> None:
        self.recipient = recipient

    async def finish(self, message: bytes) -> str:
        tag = ""
        if self.recipient_hash is not None and self.recipient is not None:
            tag = (await self.recipient_hash(self.recipient))[:FILE_TAG_LENGTH] + "-"
        name = f"{tag}{uuid.uuid4().hex}.eml"
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
    """Development transport: each message becomes ``<outbox_dir>/<tag>-<uuid>.eml``, the tag
    being the start of the recipient's keyed hash (``<uuid>.eml`` when no hash is given), so
    that an erasure can remove a person's files (``remove_files_of``, DS-3)."""

    def __init__(self, directory: Path, recipient_hash: RecipientHash | None = None) -> None:
        self.directory = directory
        self.recipient_hash = recipient_hash

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        self.directory.mkdir(parents=True, exist_ok=True)
        yield _FileConnection(self.directory, self.recipient_hash)

    @contextlib.asynccontextmanager
    async def connections(self, n: int) -> AsyncIterator[list[Connection]]:
        self.directory.mkdir(parents=True, exist_ok=True)
        yield [_FileConnection(self.directory, self.recipient_hash) for _ in range(n)]

    async def send(self, envelope_from: str, recipient: str, message: bytes) -> str:
        async with self.connection() as conn:
            await conn.start(envelope_from, recipient)
            return await conn.finish(message)

    async def close(self) -> None:
        return None


def make_transport(settings: Settings, recipient_hash: RecipientHash | None = None) -> Transport:
    if settings.smtp_host:
        return SmtpTransport(settings)
    return FileTransport(settings.outbox_dir, recipient_hash)


def remove_files_of(directory: Path, address_hash: str) -> int:
    """DS-3: delete the file transport's copies of every mail to one person; return how many.

    Found by name (their keyed-hash tag), never by reading the files. Files written before the
    names carried a tag are not found.
    """
    tag = address_hash[:FILE_TAG_LENGTH]
    if len(tag) != FILE_TAG_LENGTH or not directory.is_dir():
        return 0
    removed = 0
    for pattern in (f"{tag}-*.eml", f".{tag}-*.eml.tmp"):
        for path in directory.glob(pattern):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed
