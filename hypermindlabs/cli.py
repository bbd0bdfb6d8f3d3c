"""``hypermind-obs``: serve the app, ingest files, load the demo workload."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from hypermindlabs.config import ConfigError, Settings
from hypermindlabs.store import AppendResult, EventStore

log = logging.getLogger("hypermind-obs")


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        database_url=getattr(args, "database_url", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
    )


def serve(settings: Settings, store: EventStore | None = None, *, threads: int = 8) -> None:
    if not _is_loopback(settings.host) and not settings.api_token:
        raise ConfigError(
            f"refusing to bind {settings.host} (beyond loopback) without HYPERMIND_API_TOKEN; "
            "set a token or bind 127.0.0.1"
        )
    from waitress import serve as waitress_serve

    from hypermindlabs.web import create_app

    app = create_app(settings, store=store)
    print(f"hypermind-obs: serving on http://{settings.host}:{settings.port}/  (Ctrl-C to stop)", flush=True)
    print(f"hypermind-obs: database {_redact(settings.database_url)}", flush=True)
    # Batches of thousands of events are megabytes: read them in large chunks and keep them
    # in memory instead of waitress spooling every body over 512 KiB to a temporary file.
    waitress_serve(app, host=settings.host, port=settings.port, threads=threads, ident="hypermind-obs",
                   recv_bytes=262_144, inbuf_overflow=32 * 1024 * 1024)  # fmt: skip


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    from hypermindlabs.store import normalize_url

    return make_url(normalize_url(url)).render_as_string(hide_password=True)


def cmd_serve(args: argparse.Namespace) -> int:
    serve(_settings(args))
    return 0


def _report(result: AppendResult, total: int, sources: dict[int, str] | None = None, *, out: IO[str]) -> None:
    print(
        f"ingested {total} events: {result.accepted} accepted, {result.duplicates} duplicates, "
        f"{len(result.rejected)} rejected",
        file=out,
    )
    for r in result.rejected[:10]:
        where = sources.get(r.index, f"event {r.index}") if sources else f"event {r.index}"
        print(f"  rejected {where}: {r.field}: {r.error}", file=out)
    if len(result.rejected) > 10:
        print(f"  … and {len(result.rejected) - 10} more", file=out)


def cmd_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hypermindlabs.ingest import ingest_objects, iter_file_batches

    settings = _settings(args)
    store = EventStore.open(settings.database_url)
    total = AppendResult()
    count = 0
    sources: dict[int, str] = {}
    started = time.monotonic()
    for name in args.files:
        if name == "-":
            fh, size = sys.stdin.buffer, None
        else:
            path = Path(name)
            if not path.is_file():
                print(f"hypermind-obs ingest: no such file: {name}", file=sys.stderr)
                return 2
            fh, size = path.open("rb"), path.stat().st_size
        with tqdm(total=size, unit="B", unit_scale=True, desc=name, disable=args.quiet or None, file=sys.stderr) as bar:
            file_index = 0
            for objs, nbytes in iter_file_batches(fh, batch_size=args.batch_size):
                result = ingest_objects(store, objs, offset=count)
                for r in result.rejected:
                    if len(sources) < 10:
                        sources[r.index] = f"{name} #{r.index - count + file_index + 1}"
                file_index += len(objs)
                count += len(objs)
                total.merge(result)
                bar.update(nbytes)
                bar.set_postfix(accepted=total.accepted, dup=total.duplicates, rejected=len(total.rejected))
        if fh is not sys.stdin.buffer:
            fh.close()
    elapsed = time.monotonic() - started
    _report(total, count, sources, out=sys.stdout)
    if count:
        print(f"took {elapsed:.1f} s ({count / max(elapsed, 1e-9):,.0f} events/s)")
    store.close()
    return 1 if total.rejected else 0


def load_demo(store: EventStore, *, seed: int, days: int, runs_per_day: int, end: datetime,
              progress: bool = True) -> AppendResult:  # fmt: skip
    """Generate the demo workload and store it through the same ingest path as the API."""
    from tqdm import tqdm

    from hypermindlabs.demo import demo_spec, generate_events
    from hypermindlabs.ingest import ingest_objects

    spec = demo_spec(seed=seed, end=end, days=days)
    total = AppendResult()
    batch: list[dict] = []
    with tqdm(desc="demo events", unit=" ev", disable=not progress or None, file=sys.stderr) as bar:
        for ev in generate_events(spec, runs_per_day=runs_per_day):
            batch.append(ev)
            if len(batch) >= 5000:
                total.merge(ingest_objects(store, batch))
                bar.update(len(batch))
                batch = []
        if batch:
            total.merge(ingest_objects(store, batch))
            bar.update(len(batch))
    return total


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = EventStore.open(settings.database_url)
    existing = store.count_events()
    if existing and not args.force:
        print(f"hypermind-obs demo: the database already holds {existing} events; serving them as they are "
              "(use --force to add the demo workload anyway, or point --database-url at an empty database)")  # fmt: skip
    else:
        end = datetime.now(UTC).replace(microsecond=0)
        print(f"hypermind-obs demo: generating {args.days} days of runs (seed {args.seed}) …", flush=True)
        started = time.monotonic()
        result = load_demo(store, seed=args.seed, days=args.days, runs_per_day=args.runs_per_day, end=end,
                           progress=not args.quiet)  # fmt: skip
        took = time.monotonic() - started
        print(f"hypermind-obs demo: stored {result.accepted} events ({result.duplicates} duplicates, "
              f"{len(result.rejected)} rejected) in {took:.1f} s")  # fmt: skip
        if result.rejected:
            for r in result.rejected[:5]:
                print(f"  rejected event {r.index}: {r.field}: {r.error}")
            return 1
    if args.no_serve:
        store.close()
        return 0
    serve(settings, store)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hypermind-obs", description="Observability for LLM-agent runs.")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def db(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--database-url", help="sqlite:///path or postgresql://… (default: $HYPERMIND_DATABASE_URL "
                        "or sqlite:///var/hypermind.db)")  # fmt: skip

    def net(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--host", help="bind address (default 127.0.0.1)")
        sp.add_argument("--port", type=int, help="port (default 8080)")

    sp = sub.add_parser("serve", help="serve the API, /metrics and the web UI")
    db(sp)
    net(sp)
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser("ingest", help="ingest JSON / NDJSON files of run events ('-' reads stdin)")
    db(sp)
    sp.add_argument("files", nargs="+", metavar="FILE")
    sp.add_argument("--batch-size", type=int, default=5000, help="events per transaction (default 5000)")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_ingest)

    sp = sub.add_parser("demo", help="load the demo workload into an empty database, then serve")
    db(sp)
    net(sp)
    sp.add_argument("--seed", type=int, default=7)
    sp.add_argument("--days", type=int, default=14)
    sp.add_argument("--runs-per-day", type=int, default=1500)
    sp.add_argument("--force", action="store_true", help="load even if the database is not empty")
    sp.add_argument("--no-serve", action="store_true", help="load, then exit")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"hypermind-obs: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
