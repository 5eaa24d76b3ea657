"""The SMTP transport on its own, against real servers: pipelined (RFC 2920) when the server
offers PIPELINING, one command at a time through aiosmtplib when it does not. Either way a
message arrives byte for byte, a refusal is reported with its code, and a connection survives
a refused transaction."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

from app.config import Settings
from app.mail.transport import SendFailure, SmtpTransport
from tests.conftest import TEST_KEYS
from tests.smtp import SmtpServer

MESSAGE = (
    b"From: news@shodaku.example\r\nTo: a@example.jp\r\nSubject: test\r\n\r\n"
    b"first line\r\n.a line that starts with a dot\r\n.\r\nlast line\r\n"
)


@pytest.fixture(params=[True, False], ids=["pipelining", "one-command-at-a-time"])
def server(request: pytest.FixtureRequest) -> Iterator[SmtpServer]:
    smtp = SmtpServer(pipelining=request.param)
    smtp.start()
    yield smtp
    smtp.stop()


def _settings(host: str, port: int) -> Settings:
    return Settings(
        env="dev",
        database_url="sqlite+aiosqlite:///unused.db",
        secret_keys=TEST_KEYS,
        smtp_host=host,
        smtp_port=port,
        smtp_timeout=5,
        send_concurrency=2,
    )


@pytest.fixture
async def transport(server: SmtpServer) -> AsyncIterator[SmtpTransport]:
    smtp = SmtpTransport(_settings(server.host, server.port))
    yield smtp
    await smtp.close()


@pytest.mark.parametrize("line_end", [b"\r\n", b"\n"], ids=["crlf", "bare-lf"])
async def test_message_arrives_intact_with_dot_lines(
    server: SmtpServer, transport: SmtpTransport, line_end: bytes
):
    message = MESSAGE.replace(b"\r\n", line_end)
    reply = await transport.send("news@shodaku.example", "a@example.jp", message)
    assert reply.startswith("250")
    [received] = server.messages_to("a@example.jp")
    # Lines starting with "." were stuffed on the wire and unstuffed by the server.
    assert received.data.replace(b"\r\n", b"\n") == MESSAGE.replace(b"\r\n", b"\n")
    assert received.mail_from == "news@shodaku.example"


async def test_unknown_user_at_rcpt_is_a_hard_bounce_and_the_connection_goes_on(
    server: SmtpServer, transport: SmtpTransport
):
    """SG-4: a 550 at RCPT is reported as an unknown recipient; the next message on the same
    connection is delivered."""
    server.behaviour.rcpt_replies["gone@example.jp"] = "550 5.1.1 No such user"
    async with transport.connection() as conn:
        with pytest.raises(SendFailure) as refused:
            await conn.start("news@shodaku.example", "gone@example.jp")
        assert refused.value.code == 550
        assert refused.value.permanent
        assert refused.value.unknown_recipient
        await conn.start("news@shodaku.example", "b@example.jp")
        assert (await conn.finish(MESSAGE)).startswith("250")
    assert server.messages_to("gone@example.jp") == []
    assert len(server.messages_to("b@example.jp")) == 1


async def test_transient_refusal_after_the_message_is_retryable(
    server: SmtpServer, transport: SmtpTransport
):
    server.behaviour.data_replies["c@example.jp"] = ["451 4.3.0 Try again later"]
    async with transport.connection() as conn:
        await conn.start("news@shodaku.example", "c@example.jp")
        with pytest.raises(SendFailure) as deferred:
            await conn.finish(MESSAGE)
        assert deferred.value.code == 451
        assert not deferred.value.permanent
        await conn.start("news@shodaku.example", "c@example.jp")
        assert (await conn.finish(MESSAGE)).startswith("250")
    assert len(server.messages_to("c@example.jp")) == 1


async def test_a_started_transaction_abandoned_delivers_nothing(
    server: SmtpServer, transport: SmtpTransport
):
    """A transaction begun in the send window and then abandoned (the worker could not commit)
    delivers nothing, even when the server was already waiting for the message; the pooled
    connection then works again."""
    async with transport.connection() as conn:
        await conn.start("news@shodaku.example", "d@example.jp")
        await conn.abort()
        await conn.start("news@shodaku.example", "e@example.jp")
        assert (await conn.finish(MESSAGE)).startswith("250")
    await asyncio.sleep(0.1)
    assert server.messages_to("d@example.jp") == []
    assert len(server.messages_to("e@example.jp")) == 1


async def test_senders_sharing_a_pool_take_whole_chunks_and_never_wait_for_each_other(
    server: SmtpServer, transport: SmtpTransport
):
    """Several campaigns draining in one process share its pool (procrastinate runs several
    jobs per worker). Each chunk takes its connections at once; had each taken them one by one,
    two chunks could each hold half the pool and wait for the other half for ever."""

    async def drain(name: str) -> None:
        for i in range(5):
            async with transport.connections(2) as connections:
                for n, conn in enumerate(connections):
                    await conn.start("news@shodaku.example", f"{name}{i}-{n}@example.jp")
                await asyncio.sleep(0)  # the other senders run here, wanting the same pool
                for conn in connections:
                    await conn.finish(MESSAGE)

    await asyncio.wait_for(asyncio.gather(*(drain(f"s{k}-") for k in range(3))), timeout=20)
    assert server.count() == 3 * 5 * 2


async def test_control_characters_in_an_address_never_reach_the_server(
    server: SmtpServer, transport: SmtpTransport
):
    with pytest.raises(SendFailure) as refused:
        await transport.send(
            "news@shodaku.example", "x@example.jp>\r\nRCPT TO:<y@example.jp", MESSAGE
        )
    assert refused.value.permanent
    assert server.count() == 0


async def test_server_gone_is_a_failure_without_a_reply_code(server: SmtpServer):
    smtp = SmtpTransport(_settings(server.host, server.port))
    try:
        assert (await smtp.send("news@shodaku.example", "f@example.jp", MESSAGE)).startswith("250")
        server.stop()
        with pytest.raises(SendFailure) as unreachable:
            await smtp.send("news@shodaku.example", "g@example.jp", MESSAGE)
        assert unreachable.value.code is None
        assert not unreachable.value.permanent
        server.start()
        assert (await smtp.send("news@shodaku.example", "g@example.jp", MESSAGE)).startswith("250")
    finally:
        await smtp.close()


@contextlib.asynccontextmanager
async def _dribbling_server(received: list[bytes]) -> AsyncIterator[int]:
    """A minimal SMTP server that offers PIPELINING and writes every reply one byte at a time,
    with multi-line replies, so replies arrive cut at every possible point."""

    async def drip(writer: asyncio.StreamWriter, text: bytes) -> None:
        for i in range(len(text)):
            writer.write(text[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0)

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await drip(writer, b"220-dribble.example\r\n220 ready\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                await drip(writer, b"250-dribble.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                await drip(writer, b"354 go ahead\r\n")
                data = await reader.readuntil(b"\r\n.\r\n")
                received.append(data)
                await drip(writer, b"250-queued\r\n250 as 1234\r\n")
            elif verb == b"QUIT":
                await drip(writer, b"221 bye\r\n")
                break
            else:
                await drip(writer, b"250 ok\r\n")
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_pipelined_replies_cut_anywhere_are_read_in_order():
    received: list[bytes] = []
    async with _dribbling_server(received) as port:
        smtp = SmtpTransport(_settings("127.0.0.1", port))
        try:
            for _ in range(2):
                reply = await smtp.send("news@shodaku.example", "h@example.jp", MESSAGE)
                assert reply == "250 queued\nas 1234"
        finally:
            await smtp.close()
    assert len(received) == 2
    assert received[0].startswith(b"From: news@shodaku.example")
    assert b"\r\n..a line that starts with a dot\r\n" in received[0]


class _RawSmtp:
    """A minimal pipelining SMTP server whose misbehaviour each test sets: the reply to the
    first MAIL, a delay before answering the first RCPT, a hang-up after the first 354. Each
    accepted message's reply names its recipient, so a reply read for the wrong command shows."""

    def __init__(self) -> None:
        self.first_mail_reply = b"250 ok"
        self.first_rcpt_delay = 0.0
        self.hang_up_after_first_354 = False
        self.received: list[tuple[str, bytes]] = []
        self.connections = 0
        self._mails = self._rcpts = self._datas = 0

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"220 raw.example\r\n")
        rcpt = ""
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-raw.example\r\n250 PIPELINING\r\n")
            elif verb == b"MAIL":
                self._mails += 1
                writer.write((self.first_mail_reply if self._mails == 1 else b"250 ok") + b"\r\n")
            elif verb == b"RCPT":
                self._rcpts += 1
                if self._rcpts == 1 and self.first_rcpt_delay:
                    await asyncio.sleep(self.first_rcpt_delay)
                rcpt = line[line.find(b"<") + 1 : line.rfind(b">")].decode()
                writer.write(b"250 ok\r\n")
            elif verb == b"DATA":
                self._datas += 1
                if self._mails == 1 and self.first_mail_reply[:1] != b"2":
                    writer.write(b"503 no valid sender\r\n")
                    continue
                writer.write(b"354 go ahead\r\n")
                if self._datas == 1 and self.hang_up_after_first_354:
                    await writer.drain()
                    break
                data = await reader.readuntil(b"\r\n.\r\n")
                self.received.append((rcpt, data))
                writer.write(f"250 queued for {rcpt}\r\n".encode())
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def _raw_server() -> AsyncIterator[tuple[_RawSmtp, SmtpTransport]]:
    raw = _RawSmtp()
    server = await asyncio.start_server(raw.session, "127.0.0.1", 0)
    smtp = SmtpTransport(_settings("127.0.0.1", server.sockets[0].getsockname()[1]))
    try:
        yield raw, smtp
    finally:
        await smtp.close()
        server.close()


async def test_pipelined_refusal_at_mail_is_reported_and_the_next_message_goes():
    async with _raw_server() as (raw, smtp):
        raw.first_mail_reply = b"451 4.3.0 sender check deferred"
        with pytest.raises(SendFailure) as deferred:
            await smtp.send("news@shodaku.example", "i@example.jp", MESSAGE)
        assert deferred.value.code == 451
        assert not deferred.value.permanent
        assert await smtp.send("news@shodaku.example", "j@example.jp", MESSAGE) == (
            "250 queued for j@example.jp"
        )
        assert [r for r, _ in raw.received] == ["j@example.jp"]


async def test_connection_lost_after_354_is_retryable_and_the_pool_reconnects():
    async with _raw_server() as (raw, smtp):
        raw.hang_up_after_first_354 = True
        with pytest.raises(SendFailure) as lost:
            await smtp.send("news@shodaku.example", "k@example.jp", MESSAGE)
        assert lost.value.code is None
        assert not lost.value.permanent
        assert await smtp.send("news@shodaku.example", "l@example.jp", MESSAGE) == (
            "250 queued for l@example.jp"
        )
        assert [r for r, _ in raw.received] == ["l@example.jp"]
        assert raw.connections == 2


async def test_a_send_cancelled_mid_command_leaves_no_reply_for_the_next_one():
    """Cancelled while the server had not yet answered (a job stopped at shutdown): the replies
    still owed must never be read as the answers of the next message's commands."""
    async with _raw_server() as (raw, smtp):
        raw.first_rcpt_delay = 0.3
        sending = asyncio.create_task(smtp.send("news@shodaku.example", "m@example.jp", MESSAGE))
        await asyncio.sleep(0.1)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        assert await smtp.send("news@shodaku.example", "n@example.jp", MESSAGE) == (
            "250 queued for n@example.jp"
        )
        await asyncio.sleep(0.4)
        assert [r for r, _ in raw.received] == ["n@example.jp"]


@pytest.mark.parametrize(
    ("base_url", "ehlo_name", "expected"),
    [
        ("https://news.example.test", None, "news.example.test"),
        ("http://127.0.0.1:8300", None, "[127.0.0.1]"),
        ("https://news.example.test", "mx-out.example.jp", "mx-out.example.jp"),
    ],
)
async def test_ehlo_names_this_service_not_the_machines_guess(
    server: SmtpServer, base_url: str, ehlo_name: str | None, expected: str
) -> None:
    # socket.getfqdn() answers "localhost" on many hosts, which receiving filters punish.
    settings = _settings(server.host, server.port).model_copy(
        update={"base_url": base_url, "ehlo_name": ehlo_name}
    )
    smtp = SmtpTransport(settings)
    try:
        await smtp.send("news@shodaku.example", "a@example.jp", MESSAGE)
    finally:
        await smtp.close()
    assert server.ehlo_names == [expected]
