"""``hypermind-obs prune`` (retention), ``backup`` and ``restore`` (docs/operations.md).

- prune: deletes the raw events of runs started before a cutoff, in short transactions, keeping
  rollups and exported series (:mod:`hypermindlabs.store.retention`).
- backup: SQLite through the online backup API (a consistent copy while the server ingests);
  PostgreSQL through ``pg_dump --format=custom`` of the store's schema.
- restore: the reverse, into an empty database (SQLite: a new file; PostgreSQL: ``pg_restore``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sqlalchemy.engine import URL, make_url

from hypermindlabs.config import Settings, parse_age
from hypermindlabs.core.events import format_timestamp

__all__ = ["add_parsers", "refuse_rebuild_after_prune", "start_retention", "backup_sqlite"]

log = logging.getLogger("hypermind-obs")

class Refused(Exception):
    """A backup or restore that must not go on (the message says why); the command exits 2."""


def _age(text: str) -> int:
    seconds = parse_age(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"expected an age such as 30d, 12h or 90m, got {text!r}")
    return seconds


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(database_url=getattr(args, "database_url", None))


def _url(settings: Settings) -> URL:
    from hypermindlabs.store import normalize_url

    return make_url(normalize_url(settings.database_url))


# -- prune ----------------------------------------------------------------------------------------
def cmd_prune(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hypermindlabs.core.errors import FieldError
    from hypermindlabs.core.filters import parse_time
    from hypermindlabs.wiring import build_pipeline

    now = time.time_ns()
    if args.before is not None:
        try:
            cutoff = parse_time(args.before, "--before", now_ns=now)
        except FieldError as exc:
            print(f"hypermind-obs prune: {exc}", file=sys.stderr)
            return 2
    else:
        cutoff = now - args.older_than * 10**9
    pipeline = build_pipeline(_settings(args))
    store = pipeline.store
    when = format_timestamp(cutoff)
    try:
        mark = store.retention_watermark()
        if mark is not None:
            print(f"hypermind-obs prune: the store was pruned before {format_timestamp(mark.pruned_before_ns)} "
                  f"({mark.runs_pruned} runs, {mark.events_pruned} events so far)")  # fmt: skip
        plan = store.prune_plan(cutoff)
        print(
            f"hypermind-obs prune: {'would delete' if args.dry_run else 'deleting'} the raw events of {plan.runs} "
            f"runs started before {when}: {plan.events} events ({plan.run_events} of those runs, "
            f"{plan.orphan_events} children without a run event), {plan.run_tags} run tags, {plan.otlp_traces} "
            f"OTLP trace states, {plan.otlp_held_spans} held OTLP spans. Rollups and the exported series "
            "(/metrics) keep counting them.",
            flush=True,
        )
        if args.dry_run:
            return 0
        started = time.monotonic()
        with tqdm(desc="runs", unit=" runs", disable=args.quiet or None, file=sys.stderr) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            result = store.prune(cutoff, now_ns=now, runs_per_transaction=args.runs_per_transaction,
                                 progress=progress)  # fmt: skip
        mark = store.retention_watermark()
        assert mark is not None  # noqa: S101 - prune set it
        print(f"hypermind-obs prune: deleted {result.runs} runs ({result.events} events) in {result.transactions} "
              f"transactions, {time.monotonic() - started:.1f} s; raw events are kept from "
              f"{format_timestamp(mark.pruned_before_ns)} on")  # fmt: skip
        if store.dialect == "sqlite":
            print("hypermind-obs prune: SQLite reuses the freed pages for new events; the file only shrinks with "
                  "VACUUM (exclusive: run it with the server stopped)")  # fmt: skip
        return 0
    finally:
        pipeline.close()


def start_retention(settings: Settings, *, clock: Callable[[], int] = time.time_ns) -> threading.Thread | None:
    """``HYPERMIND_RETENTION``: a daemon thread pruning every ``retention_interval_s`` (None when unset).

    One per serving process tree: ``serve`` starts it in the process that serves (waitress) or in
    gunicorn's arbiter, never in the workers. It has a pipeline of its own; a failed prune is
    logged and retried at the next interval, never raised into the server.
    """
    age = parse_age(settings.retention) if settings.retention else None
    if age is None:
        return None
    stop = threading.Event()

    def loop() -> None:
        from hypermindlabs.wiring import build_pipeline

        while True:
            try:
                pipeline = build_pipeline(settings)
                try:
                    cutoff = clock() - age * 10**9
                    result = pipeline.store.prune(cutoff, now_ns=clock())
                    if result.runs or result.events:
                        log.info("retention: pruned %d runs (%d events) started before %s", result.runs,
                                 result.events, format_timestamp(cutoff))  # fmt: skip
                finally:
                    pipeline.close()
            except Exception:  # noqa: BLE001 - the server goes on; the next interval retries
                log.exception("retention: prune failed; retrying in %d s", settings.retention_interval_s)
            if stop.wait(settings.retention_interval_s):
                return

    thread = threading.Thread(target=loop, name="hypermind-retention", daemon=True)
    thread.stop = stop  # type: ignore[attr-defined]
    thread.start()
    return thread


def refuse_rebuild_after_prune(store: Any, command: str, allowed: bool) -> bool:
    """True (and a message) when ``command`` must not rebuild: raw events were pruned.

    A rebuild recomputes rollups and exported series from the raw events; the pruned runs are
    no longer there, so their history would vanish from the aggregates and from ``/metrics``
    (counters would drop, which Prometheus reads as a reset).
    """
    mark = store.retention_watermark()
    if mark is None:
        return False
    when = format_timestamp(mark.pruned_before_ns)
    if allowed:
        print(f"hypermind-obs {command}: WARNING: raw events of runs started before {when} were pruned; the rebuilt "
              f"rollups and /metrics count only the runs kept ({mark.runs_pruned} pruned runs drop out)",
              file=sys.stderr)  # fmt: skip
        return False
    print(
        f"hypermind-obs {command}: refusing to rebuild: raw events of runs started before {when} were pruned "
        f"({mark.runs_pruned} runs), so a rebuild from raw events would erase their history from the rollups and "
        "the exported series (/metrics counters would go down). Restore a backup taken before the prune, or pass "
        "--discard-pruned-history to rebuild from the events kept.",
        file=sys.stderr,
    )
    return True


# -- backup ---------------------------------------------------------------------------------------
def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise Refused("an in-memory SQLite database has no file to back up or restore")
    return Path(url.database)


def _search_path(url: URL) -> str | None:
    """The schema a ``?options=-csearch_path=…`` URL (as the tests use) puts the store in."""
    options = unquote(str(url.query.get("options", "")))
    for part in options.split():
        if part.startswith("-csearch_path="):
            return part.split("=", 1)[1].split(",")[0]
    return None


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection URI for pg_dump/pg_restore (password through PGPASSWORD, never argv)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None, query={})
    return plain.render_as_string(hide_password=False), env


def _check_sqlite(path: Path) -> tuple[int, str | None]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        check = con.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise Refused(f"{path} fails PRAGMA quick_check: {check}")
        events = con.execute("SELECT count(*) FROM events").fetchone()[0]
        version = con.execute("SELECT version_num FROM alembic_version").fetchone()
        return int(events), (version[0] if version else None)
    finally:
        con.close()


def backup_sqlite(source: Path, target: Path, *, busy_timeout_ms: int = 30_000) -> tuple[int, str | None]:
    """Copy a live SQLite store with the online backup API; (events, schema revision) of the copy.

    One backup step copies every page inside one read transaction: under WAL, writers go on
    meanwhile, and the copy is the database as of that transaction's start. (A step-by-step
    copy restarts whenever another connection writes between steps, so under steady ingest it
    might never finish.) Written to a temporary file next to ``target``, checked, then renamed.
    """
    tmp = target.with_name(target.name + ".partial")
    tmp.unlink(missing_ok=True)
    src = sqlite3.connect(str(source), timeout=busy_timeout_ms / 1000)
    dst = sqlite3.connect(str(tmp))
    try:
        src.backup(dst, pages=-1)
    finally:
        dst.close()
        src.close()
    events, version = _check_sqlite(tmp)
    os.replace(tmp, target)
    return events, version


def _pg_bin(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise Refused(f"{name} is not on PATH (Debian: apt install postgresql-client)")
    return path


def backup_postgres(url: URL, target: Path) -> list[str]:
    """``pg_dump --format=custom`` of the store's schema (the URL's search_path, else the database)."""
    dsn, env = _libpq(url)
    cmd = [_pg_bin("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={target}"]
    schema = _search_path(url)
    if schema:
        cmd.append(f"--schema={schema}")
    subprocess.run([*cmd, f"--dbname={dsn}"], check=True, env=env)  # noqa: S603 - our own argv
    return cmd


def cmd_backup(args: argparse.Namespace) -> int:
    try:
        return _backup(args)
    except (Refused, sqlite3.Error) as exc:
        print(f"hypermind-obs backup: {exc}", file=sys.stderr)
        return 2


def _backup(args: argparse.Namespace) -> int:
    settings = _settings(args)
    url = _url(settings)
    target = Path(args.to)
    if target.exists() and not args.force:
        print(f"hypermind-obs backup: {target} exists (pass --force to replace it)", file=sys.stderr)
        return 2
    started = time.monotonic()
    if url.get_backend_name() == "sqlite":
        events, version = backup_sqlite(_sqlite_path(url), target, busy_timeout_ms=settings.db_busy_timeout_ms)
        took = time.monotonic() - started
        print(f"hypermind-obs backup: {target}: {events} events, schema revision {version}, "
              f"{target.stat().st_size:,} bytes, in {took:.1f} s (SQLite online backup)")  # fmt: skip
        return 0
    try:
        backup_postgres(url, target)
    except subprocess.CalledProcessError as exc:
        print(f"hypermind-obs backup: pg_dump failed with exit status {exc.returncode}", file=sys.stderr)
        return 1
    print(f"hypermind-obs backup: {target}: pg_dump custom format, {target.stat().st_size:,} bytes, "
          f"in {time.monotonic() - started:.1f} s; restore with hypermind-obs restore --from {target}")  # fmt: skip
    return 0


# -- restore --------------------------------------------------------------------------------------
def _restore_sqlite(source: Path, target: Path, force: bool) -> tuple[int, str | None]:
    events, version = _check_sqlite(source)
    if target.exists() and not force:
        raise Refused(f"{target} exists; stop the server and pass --force to overwrite it")
    for suffix in ("-wal", "-shm"):  # a stale WAL of the old file must not be replayed onto the copy
        Path(str(target) + suffix).unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(str(target))
    try:
        src.backup(dst, pages=-1)
    finally:
        dst.close()
        src.close()
    return events, version


def _restore_postgres(source: Path, url: URL) -> None:
    dsn, env = _libpq(url)
    cmd = [_pg_bin("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
           f"--dbname={dsn}", str(source)]  # fmt: skip
    subprocess.run(cmd, check=True, env=env)  # noqa: S603 - our own argv


def cmd_restore(args: argparse.Namespace) -> int:
    try:
        return _restore(args)
    except (Refused, sqlite3.Error) as exc:
        print(f"hypermind-obs restore: {exc}", file=sys.stderr)
        return 2


def _restore(args: argparse.Namespace) -> int:
    from hypermindlabs.wiring import build_pipeline

    settings = _settings(args)
    url = _url(settings)
    source = Path(args.from_)
    if not source.is_file():
        print(f"hypermind-obs restore: no such file: {source}", file=sys.stderr)
        return 2
    if url.get_backend_name() == "sqlite":
        events, version = _restore_sqlite(source, _sqlite_path(url), args.force)
        print(f"hypermind-obs restore: {_sqlite_path(url)}: {events} events at schema revision {version}")
    else:
        try:
            _restore_postgres(source, url)
        except subprocess.CalledProcessError as exc:
            print(f"hypermind-obs restore: pg_restore failed with exit status {exc.returncode} (nothing restored: "
                  "one transaction); restore into an empty database or schema", file=sys.stderr)  # fmt: skip
            return 1
    # A backup of an older release is brought to this release's schema (and its derived data).
    pipeline = build_pipeline(settings)
    try:
        mark = pipeline.store.retention_watermark()
        print(f"hypermind-obs restore: {pipeline.store.count_events()} events, schema revision "
              f"{pipeline.store.schema_version()}"
              + (f", raw events pruned before {format_timestamp(mark.pruned_before_ns)}" if mark else ""))  # fmt: skip
    finally:
        pipeline.close()
    return 0


def add_parsers(sub: Any, db: Callable[[argparse.ArgumentParser], None]) -> None:
    sp = sub.add_parser("prune", help="delete raw events past retention (rollups and /metrics keep them)")
    db(sp)
    when = sp.add_mutually_exclusive_group(required=True)
    when.add_argument("--older-than", type=_age, metavar="AGE",
                      help="delete runs started more than AGE ago: 30d, 12h, 90m, 2w")  # fmt: skip
    when.add_argument("--before", help="delete runs started before this time (RFC 3339, epoch ms, now-30d)")
    sp.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")
    sp.add_argument("--runs-per-transaction", type=int, default=2_000, help="runs deleted per transaction")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_prune)

    sp = sub.add_parser("backup", help="copy the store: SQLite online backup, PostgreSQL pg_dump")
    db(sp)
    sp.add_argument("--to", required=True, metavar="FILE", help="backup file (SQLite database or pg_dump archive)")
    sp.add_argument("--force", action="store_true", help="replace FILE if it exists")
    sp.set_defaults(func=cmd_backup)

    sp = sub.add_parser("restore", help="restore a backup into an empty database (server stopped)")
    db(sp)
    sp.add_argument("--from", dest="from_", required=True, metavar="FILE", help="a file made by hypermind-obs backup")
    sp.add_argument("--force", action="store_true", help="SQLite: overwrite an existing database file")
    sp.set_defaults(func=cmd_restore)
