"""The ``shodaku`` command: serve, worker, migrate, apikey create|list|revoke, purge,
verify-ledger.

The reference is docs/reference.md, "Command line".
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import ValidationError

from app.config import Settings

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTION = (
    "Shodaku sends newsletters only to people whose consent it holds as evidence. "
    "The serve command migrates the database, then serves the API and the public pages; "
    "migrate only migrates. Every other command needs a migrated database."
)
# Commands that read or write the database without migrating it first.
NEEDS_SCHEMA = frozenset({"worker", "inbound", "apikey", "purge", "verify-ledger"})


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            print(f"shodaku: configuration error: {error['msg']}", file=sys.stderr)
        raise SystemExit(2) from exc


def _alembic_config(settings: Settings) -> Config:
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def _fail(message: str) -> SystemExit:
    print(f"shodaku: {message}", file=sys.stderr)
    return SystemExit(2)


def _sqlite_path(settings: Settings) -> Path | None:
    path = settings.database_url.split("///", 1)[-1].split("?", 1)[0]
    return None if not path or path == ":memory:" else Path(path)


def _schema_revision(settings: Settings) -> str | None:
    """The database's migration revision, reading only: a missing SQLite file is not created."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    if settings.is_sqlite:
        path = _sqlite_path(settings)
        if path is not None and not path.is_file():
            raise _fail(
                f"there is no database at {path.resolve()} (SHODAKU_DATABASE_URL). "
                "Run `shodaku migrate` (or `make serve`) in the directory that should hold it, "
                "or set SHODAKU_DATABASE_URL to the database you mean."
            )
        url = f"sqlite:///file:{path}?mode=ro&uri=true" if path else "sqlite://"
    else:
        url = settings.database_url.replace("+asyncpg", "+psycopg")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            has_version = conn.execute(
                text(
                    "SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'"
                    if settings.is_sqlite
                    else "SELECT 1 FROM pg_tables WHERE tablename = 'alembic_version'"
                )
            ).first()
            if not has_version:
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as exc:
        cause = type(getattr(exc, "orig", None) or exc).__name__
        raise _fail(
            f"cannot read the database (SHODAKU_DATABASE_URL): {cause}. "
            "Check that it is running and that the URL is right."
        ) from None
    finally:
        engine.dispose()


def _require_schema(settings: Settings) -> None:
    """Refuse, creating nothing, when the database is missing or not at the latest migration."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(settings)).get_current_head()
    revision = _schema_revision(settings)
    if revision is None:
        raise _fail("the database has no schema yet: run `shodaku migrate` first.")
    if revision != head:
        raise _fail(
            f"the database is at migration {revision}, this version of Shodaku needs {head}: "
            "run `shodaku migrate` first."
        )


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def migrate(settings: Settings) -> None:
    """``alembic upgrade head`` against the configured database."""
    from alembic import command

    from app.db import create_private_sqlite_file

    if settings.is_sqlite:
        # Make sure the directory of a relative SQLite file exists.
        path = _sqlite_path(settings)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        create_private_sqlite_file(settings.database_url)
    command.upgrade(_alembic_config(settings), "head")


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.main import create_app

    configured = _settings()
    settings = configured.served_at(args.host, args.port)
    if args.forwarded_allow_ips is not None:
        settings = settings.model_copy(update={"forwarded_allow_ips": args.forwarded_allow_ips})
    _configure_logging()
    if not configured.base_url_given:
        logging.getLogger("shodaku").warning(
            "SHODAKU_BASE_URL is not set: links in mail point at %s, where this process listens; "
            "set it to the public https address when recipients are elsewhere",
            settings.base_url,
        )
    migrate(settings)
    app = create_app(settings, run_sender=True if args.with_worker else None)
    # Uvicorn's access log would print raw paths, tokens included: ours redacts them (DS-6).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        access_log=False,
        log_level="info",
        # The application reads forwarded headers itself (app/forwarded.py), from the proxies
        # in SHODAKU_FORWARDED_ALLOW_IPS only, and warns when they arrive from anyone else.
        proxy_headers=False,
    )


def _worker(args: argparse.Namespace) -> None:
    from app.workers.worker import run_worker

    settings = _settings()
    _configure_logging()
    asyncio.run(run_worker(settings, concurrency=args.concurrency))


async def _run_inbound(
    settings: Settings, *, host: str | None, port: int | None, lmtp: bool
) -> int:
    """``shodaku inbound``: hear bounces, complaints and mailed refusals until SIGINT/SIGTERM."""
    import signal

    from app.feedback.listener import start_listener
    from app.runtime import Runtime

    runtime = Runtime.build(settings)
    try:
        await runtime.hasher()
        server, _handler = await start_listener(runtime, host=host, port=port, lmtp=lmtp)
        where = ", ".join(str(s.getsockname()) for s in server.sockets)
        logging.getLogger("shodaku").info(
            "inbound %s listener on %s for @%s",
            "LMTP" if lmtp else "SMTP",
            where,
            settings.bounce_domain,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            await stop.wait()
    finally:
        await runtime.dispose()
    return 0


def _inbound(args: argparse.Namespace) -> None:
    settings = _settings()
    if settings.bounce_domain is None:
        print("shodaku inbound: set SHODAKU_BOUNCE_DOMAIN first", file=sys.stderr)
        raise SystemExit(2)
    if args.port is None and settings.inbound_port is None:
        settings = settings.model_copy(update={"inbound_port": 2525})
    _configure_logging()
    raise SystemExit(
        asyncio.run(_run_inbound(settings, host=args.host, port=args.port, lmtp=args.lmtp))
    )


def _migrate(_args: argparse.Namespace) -> None:
    settings = _settings()
    _configure_logging()
    migrate(settings)


def _expiry(value: str) -> datetime:
    """``--expires``: a date (the key's last day) or a timestamp with its UTC offset."""
    from pydantic import TypeAdapter

    from app.apikeys.schemas import ExpiresAt

    try:
        moment: datetime = TypeAdapter(ExpiresAt).validate_python(value)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(
            "expected a date (2027-01-31) or a timestamp with its UTC offset "
            "(2027-01-31T18:00:00+09:00)"
        ) from exc
    return moment


def _run_keys(action: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run one key action in its own unit of work; an AppError is printed, exit status 1."""
    from app.db import make_engine, make_sessionmaker
    from app.errors import AppError

    settings = _settings()

    async def run() -> T:
        engine = make_engine(settings.database_url, pool_size=1)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                return await action(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except AppError as exc:
        print(f"shodaku: {exc.detail}", file=sys.stderr)
        raise SystemExit(1) from exc


def _apikey_create(args: argparse.Namespace) -> None:
    from app.apikeys.service import KeyView, create_key
    from app.models.enums import ApiKeyScope

    async def action(session: AsyncSession) -> tuple[KeyView, str]:
        return await create_key(
            session,
            None,
            name=args.name,
            scope=ApiKeyScope(args.scope),
            sender_ids=args.sender or [],
            expires_at=args.expires,
        )

    view, key = _run_keys(action)
    bound = ", ".join(map(str, view.sender_ids)) or "every sender"
    print(
        f"created API key {view.key.id} ({args.scope}) named {args.name!r}, for {bound}",
        file=sys.stderr,
    )
    print(key)


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"


def _apikey_list(_args: argparse.Namespace) -> None:
    from app.apikeys.service import KeyView, list_keys

    async def action(session: AsyncSession) -> list[KeyView]:
        views: list[KeyView] = []
        cursor: int | None = None
        while True:
            page, _next = await list_keys(session, None, after_id=cursor, limit=500)
            views += page
            if len(page) < 500:
                return views
            cursor = page[-1].key.id

    # Never the key: it is not stored; the prefix tells keys apart.
    print("id\tname\tscope\tprefix\tsenders\tcreated\texpires\tlast_used\trevoked")
    for view in _run_keys(action):
        row = view.key
        senders = ",".join(map(str, view.sender_ids)) or "all"
        print(
            "\t".join(
                [
                    str(row.id),
                    row.name,
                    row.scope,
                    row.prefix,
                    senders,
                    _when(row.created_at),
                    _when(row.expires_at),
                    _when(row.last_used_at),
                    _when(row.revoked_at),
                ]
            )
        )


def _apikey_revoke(args: argparse.Namespace) -> None:
    from app.apikeys.service import KeyView, revoke_key

    async def action(session: AsyncSession) -> KeyView:
        return await revoke_key(session, None, args.id)

    view = _run_keys(action)
    print(f"API key {view.key.id} ({view.key.name!r}) revoked at {_when(view.key.revoked_at)}")


async def _purge_command(settings: Settings, *, dry_run: bool) -> int:
    """``shodaku purge [--dry-run]``: purge now, print the counts; the exit code."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.db import make_engine, make_sessionmaker
    from app.privacy.retention import purge

    engine = make_engine(settings.database_url, pool_size=1)
    try:
        report = await purge(make_sessionmaker(engine), dry_run=dry_run)
    except SQLAlchemyError as exc:
        # The first line only: the statement and its parameters (addresses) stay out.
        reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
        print(f"shodaku purge: database error: {reason}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    if dry_run:
        print("dry run: nothing was changed")
    for line in report.lines(dry_run=dry_run):
        print(line)
    return 0


def _purge(args: argparse.Namespace) -> None:
    settings = _settings()
    _configure_logging()
    raise SystemExit(asyncio.run(_purge_command(settings, dry_run=args.dry_run)))


async def _verify_ledger_command(settings: Settings) -> int:
    """``shodaku verify-ledger`` (CR-3): 0 and ``ledger ok: N events, M senders``, or 1 and the
    first broken event; 2 if the ledger cannot be read at all."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from app.db import make_engine, make_sessionmaker
    from app.ledger.service import verify_ledger

    engine = make_engine(settings.database_url, pool_size=1)
    try:
        verdict = await verify_ledger(make_sessionmaker(engine))
    except (OperationalError, ProgrammingError) as exc:
        print(
            f"shodaku: cannot read the ledger ({type(exc).__name__}); "
            "is the database reachable and migrated (shodaku migrate)?",
            file=sys.stderr,
        )
        return 2
    finally:
        await engine.dispose()
    print(verdict.summary())
    return 0 if verdict.ok else 1


def _verify_ledger(_args: argparse.Namespace) -> None:
    settings = _settings()
    raise SystemExit(asyncio.run(_verify_ledger_command(settings)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shodaku", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate, then serve the API and public pages")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--with-worker", action="store_true", help="also send campaigns in this process"
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="behind a reverse proxy: the proxy addresses whose X-Forwarded-For is trusted "
        "(the client address is recorded with consent and used for signup limits); "
        "default SHODAKU_FORWARDED_ALLOW_IPS",
    )
    serve.set_defaults(func=_serve)

    worker = commands.add_parser("worker", help="run a send worker only")
    worker.add_argument("--concurrency", type=int, default=None, help="jobs run at once")
    worker.set_defaults(func=_worker)

    inbound = commands.add_parser(
        "inbound", help="hear bounces, complaints and mailed refusals (SMTP or LMTP)"
    )
    inbound.add_argument("--host", default=None, help="default SHODAKU_INBOUND_HOST")
    inbound.add_argument(
        "--port", type=int, default=None, help="default SHODAKU_INBOUND_PORT, else 2525"
    )
    inbound.add_argument("--lmtp", action="store_true", help="speak LMTP (behind Postfix)")
    inbound.set_defaults(func=_inbound)

    mig = commands.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    mig.set_defaults(func=_migrate)

    purge = commands.add_parser(
        "purge", help="remove records past their retention (CR-2) and report counts"
    )
    purge.add_argument("--dry-run", action="store_true", help="report, change nothing")
    purge.set_defaults(func=_purge)

    verify = commands.add_parser(
        "verify-ledger", help="check the consent ledger's hash chain; name the first broken event"
    )
    verify.set_defaults(func=_verify_ledger)

    apikey = commands.add_parser("apikey", help="manage admin API keys")
    apikey_commands = apikey.add_subparsers(dest="apikey_command", required=True)
    create = apikey_commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", choices=["admin", "read"], default="admin")
    create.add_argument(
        "--sender",
        type=int,
        action="extend",
        nargs="+",
        metavar="ID",
        help="bind the key to these senders (repeatable); without it the key acts for every sender",
    )
    create.add_argument(
        "--expires",
        type=_expiry,
        metavar="DATE",
        help="last day (2027-01-31, UTC) or a timestamp with its offset; default: never",
    )
    create.set_defaults(func=_apikey_create)
    listing = apikey_commands.add_parser("list", help="list keys (never the key itself)")
    listing.set_defaults(func=_apikey_list)
    revoke = apikey_commands.add_parser("revoke", help="revoke a key: refused from now on")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(func=_apikey_revoke)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command in NEEDS_SCHEMA:
        _require_schema(_settings())
    args.func(args)


if __name__ == "__main__":
    main()
