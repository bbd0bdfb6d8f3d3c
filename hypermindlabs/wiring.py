"""The composition root: from :class:`~hypermindlabs.config.Settings` to the running pipeline.

Every entry point builds through :func:`build_pipeline` — ``hypermind-obs serve``/``ingest``/
``demo``, the app factory when it is not handed a pipeline, ``web_ui.py``, the tests and the
benches — so an event is classified, counted in the rollups and exported the same way whichever
door it came in by::

    settings ─► engine (+ migrations) ─► EventStore
                    enricher      = triage.report.enrich        (failure class, cluster id)
                    attributor    = triage.report.attribute     (a failed run's root cause)
                    append_hooks  = [rollups.RollupHook()]       (same transaction as the events)
                    append_hooks += [export.ExportHook(caps)]    (the exported-series view behind /metrics)
                    commit_hooks  = [Telemetry.record_rows]      (after commit: OTLP spans, when exported)

The store imports nothing above ``core``: this module is the only place that knows all of them.

    >>> from hypermindlabs.config import Settings
    >>> pipeline = build_pipeline(Settings(database_url="sqlite:///:memory:"))
    >>> pipeline.store.count_events()
    0
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.sdk.trace.export import SpanExporter

from hypermindlabs.config import Settings
from hypermindlabs.export.admission import WindowCaps
from hypermindlabs.export.cardinality import parse_budgets
from hypermindlabs.export.telemetry import Telemetry
from hypermindlabs.export.view import ExportHook
from hypermindlabs.export.view import rebuild_on as rebuild_export
from hypermindlabs.rollups.writer import RollupHook, rebuild_on
from hypermindlabs.store import AppendHook, Enricher, EventStore, migrate_schema, schema_includes, schema_version
from hypermindlabs.store.attribution import Attributor
from hypermindlabs.store.dialect import open_engine
from hypermindlabs.store.label_admissions import LabelAdmissions
from hypermindlabs.triage.report import attribute, enrich

__all__ = ["Pipeline", "build_pipeline"]

#: The last migration that changed what the rollups hold: 0003 created them, 0008 added the per-run
#: sums of squares, 0011 packed each cell's sketch into one column, 0013 kept the step level's
#: ``full`` cube per hour, 0016 kept failed runs' clusters as tag-cube members, 0018 added the run
#: ``tags`` cube, 0021 kept ``total`` per minute too, 0022 added the narrow cubes
#: (store/migrations/versions/). A database upgraded past it gets them recomputed.
ROLLUPS_REVISION = "0022"
#: The migration that created the exported-series view (0009_export_series.py).
EXPORT_REVISION = "0009"


@dataclass(frozen=True)
class Pipeline:
    """What an entry point runs on: the store with its hooks, the telemetry it feeds, the clock."""

    settings: Settings
    store: EventStore
    telemetry: Telemetry | None
    clock: Callable[[], int]
    rollups: RollupHook | None = None
    export: ExportHook | None = None

    def close(self) -> None:
        self.store.close()


def build_pipeline(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    migrate: bool = True,
    rollups: bool = True,
    enricher: Enricher | None = enrich,
    attributor: Attributor | None = None,
    export: bool = True,
    telemetry: Telemetry | None = None,
    span_exporter: SpanExporter | None = None,
    clock: Callable[[], int] = time.time_ns,
) -> Pipeline:
    """The product's pipeline on ``database_url`` (default ``settings.database_url``).

    ``rollups=False``, ``enricher=None``, ``export=False`` (no metrics or spans), ``telemetry`` and
    ``span_exporter`` exist for tests and benches that measure one part alone; production uses the
    defaults. ``attributor`` defaults to triage's root-cause rule when the enricher is triage's;
    a test enricher with known answers gets none unless it passes one (its runs keep their own class).
    """
    if attributor is None and enricher is enrich:
        attributor = attribute
    settings = settings or Settings.from_env()
    engine = open_engine(database_url or settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms)
    fill_rollups = fill_export = False
    if migrate:
        before = schema_version(engine)
        migrate_schema(engine)  # before the label caps read their admitted values back
        # Rollups and the exported-series view are derived data: a database upgraded past the
        # revision creating them gets them computed from its stored events, once, below.
        fill_rollups = before is not None and not schema_includes(before, ROLLUPS_REVISION)
        fill_export = before is not None and not schema_includes(before, EXPORT_REVISION)
    caps = WindowCaps(parse_budgets(settings.label_budgets), window_s=settings.label_window_s, clock=clock)
    if telemetry is None and export:
        telemetry = Telemetry.from_settings(
            settings, admissions=LabelAdmissions(engine), span_exporter=span_exporter, clock=clock,
            record_metrics=False,
        )
    hook = RollupHook() if rollups else None
    append_hooks: list[AppendHook] = [hook] if hook is not None else []
    export_hook = None
    # A database deliberately left unmigrated (tests of upgrades) may predate the view's tables.
    if export and (migrate or schema_includes(schema_version(engine), EXPORT_REVISION)):
        export_hook = ExportHook(caps)
        append_hooks.append(export_hook)
    # After commit only what is left in-process: spans (and the SDK metrics of a telemetry a
    # test hands in); nothing at all when no span exporter is configured.
    commit_hooks = []
    if telemetry is not None and (telemetry.record_metrics or telemetry.tracer_provider is not None):
        commit_hooks.append(telemetry.record_rows)
    store = EventStore(
        engine, enricher=enricher, attributor=attributor, append_hooks=append_hooks, commit_hooks=commit_hooks,
        read_timeout_ms=settings.query_timeout_ms,
    )
    if fill_rollups:
        with store.transaction() as conn:
            rebuild_on(conn)
    if fill_export and export_hook is not None:
        with store.transaction() as conn:
            rebuild_export(conn, caps)
    return Pipeline(settings=settings, store=store, telemetry=telemetry, clock=clock, rollups=hook, export=export_hook)
