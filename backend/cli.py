"""`backline` command: serve, migrate, run workers, scan a folder, export the schema."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from backend.core.settings import Settings, get_settings


def _configure_logging(settings: Settings) -> None:
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(log_dir / "backline.log")],
    )


def migrate(settings: Settings) -> None:
    from backend.core.database import create_engine
    from backend.core.migrations import upgrade_to_head

    async def run() -> None:
        engine = create_engine(settings.resolved_database_url)
        try:
            await upgrade_to_head(engine)
        finally:
            await engine.dispose()

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(run())
    print(f"Database is up to date ({_describe(settings.resolved_database_url)}).")


def serve(settings: Settings) -> None:
    import uvicorn

    from backend.app import create_app

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not settings.allowed_roots:
        # The default place for recordings exists from the start, ready to be a source.
        (settings.data_dir / "library").mkdir(exist_ok=True)
    _configure_logging(settings)
    print(f"Backline is serving http://{settings.host}:{settings.port}/graphql", flush=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        # GraphQL events are a few hundred bytes: compressing them saves nothing, and
        # each socket's deflate state costs ~40 KiB (bench/fanout.py).
        ws_per_message_deflate=False,
        # A websocket message is a GraphQL request too: the same size limit as a body.
        ws_max_size=settings.max_request_bytes,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


def worker(settings: Settings, processes: int, threads: int) -> int:
    """Run Dramatiq worker processes on the Redis broker (the scaled-out mode)."""
    if not settings.redis_url:
        print(
            "`backline worker` consumes jobs from Redis: set BACKLINE_REDIS_URL. "
            "Without it, `backline serve` runs the workers in-process."
        )
        return 2
    from dramatiq.cli import main as dramatiq_main
    from dramatiq.cli import make_argument_parser

    arguments = make_argument_parser().parse_args(
        ["workers.main", "--processes", str(processes), "--threads", str(threads)]
    )
    return dramatiq_main(arguments)


def scan_folder(
    settings: Settings, path: str, band: str, name: str | None, watch: bool | None
) -> int:
    """Index a folder for a band (backend/scan_cli.py): 0 ok, 1 failed, 2 refused, 130 ^C."""
    from backend.scan_cli import ScanRequest, run

    return run(settings, ScanRequest(path=path, band=band, name=name, watch=watch))


def export_schema(output: Path | None, check: bool) -> int:
    from backend.graphql.schema import schema

    sdl = schema.as_str() + "\n"
    if output is None:
        sys.stdout.write(sdl)
        return 0
    if check:
        current = output.read_text() if output.exists() else ""
        if current != sdl:
            print(f"{output} differs from the schema in the code; run `make schema`.")
            return 1
        print(f"{output} matches the code.")
        return 0
    output.write_text(sdl)
    print(f"Wrote {output}.")
    return 0


def _describe(url: str) -> str:
    return url.split("@")[-1] if "@" in url else url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve GraphQL (refuses an unmigrated database)")
    commands.add_parser("migrate", help="bring the database to the newest migration")
    work = commands.add_parser("worker", help="run job workers on the Redis broker")
    work.add_argument("--processes", type=int, default=2)
    work.add_argument("--threads", type=int, default=4)
    scan = commands.add_parser(
        "scan", help="index a folder for a band, with a progress bar (exit 0 ok, 1 failed)"
    )
    scan.add_argument("path", help="the folder (inside BACKLINE_ALLOWED_ROOTS)")
    scan.add_argument("--band", required=True, help="the band's slug (or id)")
    scan.add_argument("--name", help="name of the source, if new (default: the folder's)")
    scan.add_argument(
        "--watch",
        action=argparse.BooleanOptionalAction,
        help="mark the source watched, or not (default: leave it as it is)",
    )
    export = commands.add_parser("export-schema", help="print or write the GraphQL SDL")
    export.add_argument("--output", type=Path)
    export.add_argument("--check", action="store_true", help="fail if --output differs")
    args = parser.parse_args(argv)

    if args.command == "export-schema":
        return export_schema(args.output, args.check)
    settings = get_settings()
    if args.command == "migrate":
        migrate(settings)
    elif args.command == "serve":
        serve(settings)
    elif args.command == "worker":
        return worker(settings, args.processes, args.threads)
    elif args.command == "scan":
        return scan_folder(settings, args.path, args.band, args.name, args.watch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
