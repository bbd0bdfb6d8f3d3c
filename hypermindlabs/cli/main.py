"""``hypermind-obs``: serve the app, ingest files, load the demo workload."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from hypermindlabs.config import ConfigError, Settings, is_loopback_host
from hypermindlabs.core.vocabulary import DIMENSIONS
from hypermindlabs.store import AppendResult
from hypermindlabs.wiring import Pipeline, build_pipeline

log = logging.getLogger("hypermind-obs")


def _is_loopback(host: str) -> bool:
    return is_loopback_host(host)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        database_url=getattr(args, "database_url", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        workers=getattr(args, "workers", None),
    )


def serve(settings: Settings, pipeline: Pipeline | None = None, *, threads: int = 8) -> None:
    """Serve the app: waitress in this process (``workers`` 1), else gunicorn with the app factory.

    Every worker builds its own pipeline on the same database; ``/metrics`` renders the store's
    exported-series view, so each worker answers the same numbers.
    """
    if not _is_loopback(settings.host) and not (settings.api_token or settings.admin_token):
        raise ConfigError(
            f"refusing to bind {settings.host} (beyond loopback) without HYPERMIND_API_TOKEN or HYPERMIND_ADMIN_TOKEN; "
            "set a token or bind 127.0.0.1"
        )
    from hypermindlabs.cli.retention import start_retention

    if settings.workers > 1:
        _serve_gunicorn(settings, pipeline, threads=threads, on_ready=lambda: start_retention(settings))
        return
    start_retention(settings)
    from waitress import serve as waitress_serve

    from hypermindlabs.web import create_app

    app = create_app(settings, pipeline=pipeline)
    print(f"hypermind-obs: serving on http://{settings.host}:{settings.port}/  (Ctrl-C to stop)", flush=True)
    print(f"hypermind-obs: database {_redact(settings.database_url)}", flush=True)
    # Batches of thousands of events are megabytes: read them in large chunks and keep them
    # in memory instead of waitress spooling every body over 512 KiB to a temporary file.
    waitress_serve(app, host=settings.host, port=settings.port, threads=threads, ident="hypermind-obs",
                   recv_bytes=262_144, inbuf_overflow=32 * 1024 * 1024)  # fmt: skip


def _serve_gunicorn(
    settings: Settings, pipeline: Pipeline | None, *, threads: int, on_ready: Any = None
) -> None:
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

    from hypermindlabs.web import create_app

    # Migrate once here, before the workers fork; each worker then opens its own engine.
    (pipeline or build_pipeline(settings)).close()

    class _App(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{settings.host}:{settings.port}")
            self.cfg.set("workers", settings.workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", threads)
            self.cfg.set("timeout", 120)
            # A stop (SIGTERM) lets requests in flight finish for up to 10 s, then ends the workers:
            # an interrupted batch rolls back whole and its retry is idempotent (event IDs), so a
            # stop stays bounded on a loaded machine (gunicorn's default wait is 30 s).
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("proc_name", "hypermind-obs")
            if on_ready is not None:  # in the arbiter, once: never in each worker
                self.cfg.set("when_ready", lambda _server: on_ready())

        def load(self) -> object:
            return create_app(settings)

    print(f"hypermind-obs: serving on http://{settings.host}:{settings.port}/ with {settings.workers} gunicorn "
          "workers (Ctrl-C to stop)", flush=True)  # fmt: skip
    print(f"hypermind-obs: database {_redact(settings.database_url)}", flush=True)
    if settings.rate_limits_active() and settings.rate_limit_storage.startswith("memory://"):
        print(f"hypermind-obs: warning: rate limits are counted per worker (HYPERMIND_RATE_LIMIT_STORAGE=memory://), "
              f"so {settings.workers} workers allow {settings.workers}× each limit; set "
              "HYPERMIND_RATE_LIMIT_STORAGE=redis://… to share them", flush=True)  # fmt: skip
    _App().run()


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
    store = build_pipeline(settings).store
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


def cmd_demo(args: argparse.Namespace) -> int:
    from hypermindlabs.demo.load import load_demo

    settings = _settings(args)
    pipeline = build_pipeline(settings)
    store = pipeline.store
    existing = store.count_events()
    if existing and not args.force:
        print(
            f"hypermind-obs demo: the database already holds {existing} events; serving them as they are "
            "(use --force to add the demo workload anyway, or point --database-url at an empty database)"
        )
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
    serve(settings, pipeline)
    return 0


def cmd_rebuild_rollups(args: argparse.Namespace) -> int:
    """Drop the rollups and recompute them from the raw events, in one transaction."""
    from tqdm import tqdm

    from hypermindlabs.cli.retention import refuse_rebuild_after_prune
    from hypermindlabs.rollups import rebuild_rollups

    settings = _settings(args)
    pipeline = build_pipeline(settings)
    store = pipeline.store
    if refuse_rebuild_after_prune(store, "rebuild-rollups", args.discard_pruned_history):
        store.close()
        return 2
    print(f"hypermind-obs rebuild-rollups: recomputing the rollups of {_redact(settings.database_url)} from its "
          "raw events in one transaction (writers wait until it commits) …", flush=True)  # fmt: skip
    started = time.monotonic()
    with tqdm(desc="runs", unit=" runs", disable=args.quiet or None, file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        runs = rebuild_rollups(store, progress=progress)
    if pipeline.export is not None:
        from hypermindlabs.export.view import rebuild_on as rebuild_export

        with pipeline.store.transaction() as conn:
            exported = rebuild_export(conn, pipeline.export.caps)
        print(f"hypermind-obs rebuild-rollups: rebuilt the exported series (/metrics) of {exported} runs")
    print(f"hypermind-obs rebuild-rollups: rebuilt the rollups of {runs} runs in {time.monotonic() - started:.1f} s")
    store.close()
    return 0


def cmd_triage(args: argparse.Namespace) -> int:
    import orjson

    from hypermindlabs.core.errors import FieldError
    from hypermindlabs.triage.report import cluster_report
    from hypermindlabs.web.params import parse_cluster_query

    settings = _settings(args)
    store = build_pipeline(settings).store
    params: dict[str, list[str]] = {"from": [args.since], "limit": [str(args.limit)], "sort": [args.sort],
                                    "min_runs": [str(args.min_runs)], "samples": [str(args.samples)]}  # fmt: skip
    if args.until:
        params["to"] = [args.until]
    if args.step:
        params["step"] = [args.step]
    for name in DIMENSIONS:
        if getattr(args, name):
            params[name] = [getattr(args, name)]
    for tag in args.tag or []:
        key, _, value = tag.partition("=")
        params[f"tag.{key}"] = [value]
    try:
        report = cluster_report(store, parse_cluster_query(params, now_ns=time.time_ns()))
    except FieldError as exc:
        print(f"hypermind-obs triage: {exc.field}: {exc.reason}", file=sys.stderr)
        return 2
    finally:
        store.close()
    if args.json:  # the API's answer, byte for byte the same shape
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(_triage_text(report, since=args.since, hints=args.hints))
    return 0


_SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[int]) -> str:
    """Counts as block characters, scaled to the largest (0 stays the lowest block).

    >>> sparkline([0, 1, 4, 8])
    '▁▂▄█'
    """
    top = max(values, default=0)
    if top <= 0:
        return _SPARKS[0] * len(values)
    return "".join(_SPARKS[0 if v <= 0 else max(1, round(v / top * (len(_SPARKS) - 1)))] for v in values)


def _triage_text(report: dict[str, Any], *, since: str, hints: bool) -> str:
    clusters = report["clusters"]
    lines = [
        f"{report['failed_runs']} failed runs and {report['recovered_runs']} recovered runs since {since} "
        f"({report['from']} → {report['to']}); {report['clusters_total']} failure clusters"
        + (f", the {len(clusters)} largest shown" if len(clusters) < report["clusters_total"] else ""),
        "failed: runs attributed to the cluster (their root cause; each failed run counts once) · "
        "recovered: runs that ended ok after a failed step in it · steps: failed steps in it",
        f"trend: failed runs per {_duration(report['step_s'])} from {report['from']}",
    ]
    if not clusters:
        return "\n".join(lines)
    width = max(len(c["trend"]) for c in clusters)
    lines.append(f"{'failed':>6} {'share':>6} {'recov':>5} {'steps':>5} {'state':<9} {'trend':<{width}}  "
                 f"{'cluster':<16}  label")  # fmt: skip
    for c in clusters:
        lines.append(
            f"{c['failed_runs']:>6} {c['share_of_failed_runs']:>6.0%} {c['recovered_runs']:>5} {c['failed_steps']:>5} "
            f"{c['state']:<9} {sparkline(c['trend']):<{width}}  {c['cluster_id']:<16}  {_printable(c['label'])}"
        )
        pad = " " * 8
        conc = "; ".join(
            f"{key} " + ", ".join(f"{_printable(v['value'])} {v['share']:.0%}" for v in values)
            for key, values in c["concentration"].items() if values
        )  # fmt: skip
        if conc:
            lines.append(f"{pad}concentration: {conc}")
        if c["sample_run_ids"]:
            lines.append(f"{pad}sample runs: {', '.join(_printable(r) for r in c['sample_run_ids'])}")
        if hints:
            lines.append(f"{pad}hint: {_printable(c['hint'])}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _printable(text: str) -> str:
    # Labels come from untrusted error messages: never let them drive the terminal.
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def cmd_reclassify(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hypermindlabs.cli.retention import refuse_rebuild_after_prune
    from hypermindlabs.triage.classify import ALGORITHM_VERSION
    from hypermindlabs.triage.report import reclassify

    settings = _settings(args)
    store = build_pipeline(settings).store
    # Relabelled classes are only consistent with the rollups after a rebuild from raw events.
    if refuse_rebuild_after_prune(store, "reclassify", args.discard_pruned_history):
        store.close()
        return 2
    with tqdm(desc="failed events", unit=" ev", disable=args.quiet or None, file=sys.stderr) as bar:
        examined, changed = reclassify(store, progress=bar.update)
    print(f"hypermind-obs reclassify: triage algorithm v{ALGORITHM_VERSION}: {examined} failed events examined, "
          f"{changed} re-labelled")  # fmt: skip
    if changed:  # rollups count runs by failure class: recompute them from the new labels
        from hypermindlabs.rollups import rebuild_rollups

        rebuild_rollups(store)
        print("hypermind-obs reclassify: rollups rebuilt")
    store.close()
    return 0


def _duration_s(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        n, unit = (int(text[:-1]), text[-1]) if text[-1:] in units else (int(text), "s")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a duration such as 60s, 5m or 1h, got {text!r}") from exc
    if n <= 0:
        raise argparse.ArgumentTypeError("the step must be positive")
    return n * units[unit]


def cmd_export_openmetrics(args: argparse.Namespace) -> int:
    """Write the store's history as OpenMetrics (for ``promtool tsdb create-blocks-from openmetrics``)."""
    from hypermindlabs.core.errors import FieldError
    from hypermindlabs.core.filters import parse_time
    from hypermindlabs.export.history import write_history

    now = time.time_ns()
    try:
        from_ns = parse_time(args.from_, "--from", now_ns=now)
        to_ns = parse_time(args.to, "--to", now_ns=now)
    except FieldError as exc:
        print(f"hypermind-obs export-openmetrics: {exc}", file=sys.stderr)
        return 2
    if to_ns < from_ns:
        print("hypermind-obs export-openmetrics: --to is before --from", file=sys.stderr)
        return 2
    pipeline = build_pipeline(_settings(args))
    assert pipeline.export is not None  # noqa: S101 - the default pipeline exports
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")  # noqa: SIM115
    try:
        steps = write_history(pipeline.store.engine, pipeline.export.caps, out, from_ns=from_ns, to_ns=to_ns,
                              step_ns=args.step * 10**9)  # fmt: skip
    finally:
        if out is not sys.stdout.buffer:
            out.close()
        pipeline.close()
    print(f"hypermind-obs export-openmetrics: {steps} steps of {args.step} s written", file=sys.stderr)
    return 0


def cmd_otlp_sweep(args: argparse.Namespace) -> int:
    from hypermindlabs.ingest.otlp import sweep

    settings = _settings(args)
    timeout = args.timeout_s if args.timeout_s is not None else settings.otlp_root_timeout_s
    store = build_pipeline(settings).store
    # Each due trace is closed in its own transaction, so a large backlog never becomes one huge one.
    total = sweep(store, now_ns=time.time_ns(), root_timeout_s=timeout, limit=10**9)
    print(f"hypermind-obs otlp-sweep: {total} runs synthesised from traces whose root span did not arrive "
          f"within {timeout} s")  # fmt: skip
    store.close()
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
        sp.add_argument("--workers", type=int, help="worker processes: 1 = waitress (default), more = gunicorn")

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

    sp = sub.add_parser("rebuild-rollups", help="drop the rollups and recompute them from the raw events")
    db(sp)
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sp.add_argument("--discard-pruned-history", action="store_true",
                    help="rebuild even after a prune (the pruned runs drop out of rollups, /metrics)")  # fmt: skip
    sp.set_defaults(func=cmd_rebuild_rollups)

    sp = sub.add_parser("export-openmetrics", help="write the store's history as OpenMetrics for promtool backfill")
    db(sp)
    sp.add_argument("--from", dest="from_", required=True, help="start (RFC 3339, epoch or now-15d)")
    sp.add_argument("--to", required=True, help="end (RFC 3339, epoch or now)")
    sp.add_argument("--step", type=_duration_s, default=60, help="sample interval, e.g. 60s (default), 5m, 1h")
    sp.add_argument("-o", "--output", default="-", help="file to write ('-': standard output)")
    sp.set_defaults(func=cmd_export_openmetrics)

    sp = sub.add_parser("triage", help="print the failure clusters of a time window, biggest first")
    db(sp)
    sp.add_argument("--since", default="now-24h", help="window start: now-24h (default), RFC 3339 or epoch ms")
    for name in DIMENSIONS:
        sp.add_argument(f"--{name}")
    sp.add_argument("--tag", action="append", metavar="KEY=VALUE", help="tag filter (repeatable)")
    sp.add_argument("--until", help="window end (default now)")
    sp.add_argument("--step", help="trend step: 1h, 1d… (default: hours up to two days, days beyond)")
    sp.add_argument("--limit", type=int, default=20, help="clusters shown (default 20)")
    sp.add_argument("--min-runs", type=int, default=1, help="hide clusters with fewer failed + recovered runs")
    sp.add_argument("--sort", default="failed_runs", choices=("failed_runs", "growth", "newest"))
    sp.add_argument("--samples", type=int, default=3, help="sample run IDs per cluster (default 3)")
    sp.add_argument("--hints", action="store_true", help="print each cluster's remediation hint")
    sp.add_argument("--json", action="store_true", help="print the API's answer (GET /api/v1/failures/clusters)")
    sp.set_defaults(func=cmd_triage)

    from hypermindlabs.cli.regressions import add_parser as add_regressions

    add_regressions(sub, db)

    sp = sub.add_parser("reclassify", help="re-run failure classification on stored events (after an upgrade)")
    db(sp)
    sp.add_argument("-q", "--quiet", action="store_true")
    sp.add_argument("--discard-pruned-history", action="store_true",
                    help="reclassify even after a prune (its rollup rebuild drops the pruned runs)")  # fmt: skip
    sp.set_defaults(func=cmd_reclassify)

    sp = sub.add_parser("otlp-sweep", help="close OTLP traces whose root span never arrived (after the root timeout)")
    db(sp)
    sp.add_argument("--timeout-s", type=int, help="seconds since the trace's last span (default "
                    "$HYPERMIND_OTLP_ROOT_TIMEOUT_S or 300)")  # fmt: skip
    sp.set_defaults(func=cmd_otlp_sweep)

    from hypermindlabs.cli.retention import add_parsers as add_retention_parsers

    add_retention_parsers(sub, db)

    from hypermindlabs.cli.stack import add_parser as add_stack_parser

    add_stack_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"hypermind-obs: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
