"""The ``shodaku`` command: serve, worker, migrate, apikey create (API.md, CLI)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from app.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            print(f"shodaku: configuration error: {error['msg']}", file=sys.stderr)
        raise SystemExit(2) from exc


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def migrate(settings: Settings) -> None:
    """``alembic upgrade head`` against the configured database."""
    from alembic import command
    from alembic.config import Config

    from app.db import create_private_sqlite_file

    if settings.is_sqlite:
        # Make sure the directory of a relative SQLite file exists.
        path = settings.database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        create_private_sqlite_file(settings.database_url)
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.main import create_app

    settings = _settings()
    if args.forwarded_allow_ips is not None:
        settings = settings.model_copy(update={"forwarded_allow_ips": args.forwarded_allow_ips})
    _configure_logging()
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
    from app.sending.worker import run_worker

    settings = _settings()
    _configure_logging()
    asyncio.run(run_worker(settings, concurrency=args.concurrency))


def _migrate(_args: argparse.Namespace) -> None:
    settings = _settings()
    _configure_logging()
    migrate(settings)


def _apikey_create(args: argparse.Namespace) -> None:
    from app.auth.service import create_api_key
    from app.db import make_engine, make_sessionmaker
    from app.models.enums import ApiKeyScope

    settings = _settings()

    async def run() -> str:
        engine = make_engine(settings.database_url, pool_size=1)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                row, key = await create_api_key(session, args.name, ApiKeyScope(args.scope))
                print(
                    f"created API key {row.id} ({args.scope}) named {args.name!r}", file=sys.stderr
                )
                return key
        finally:
            await engine.dispose()

    key = asyncio.run(run())
    print(key)


def _purge(args: argparse.Namespace) -> None:
    from app.privacy.retention import purge_command

    settings = _settings()
    _configure_logging()
    raise SystemExit(asyncio.run(purge_command(settings, dry_run=args.dry_run)))


def _verify_ledger(_args: argparse.Namespace) -> None:
    from app.ledger.chain import verify_command

    settings = _settings()
    raise SystemExit(asyncio.run(verify_command(settings)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shodaku", description=__doc__)
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
    create.set_defaults(func=_apikey_create)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
