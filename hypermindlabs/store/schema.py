"""Table definitions used by queries. The migrations under ``migrations/versions`` create them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

from hypermindlabs.core.vocabulary import ROLLUP_MEASURES, ROLLUP_SQUARES, RUN_DIMENSIONS

metadata = MetaData()

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (and so auto-incrementing).
SeqType = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("run_id", String(128), nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("span_id", String(16), nullable=False),
    Column("parent_span_id", String(16)),
    Column("kind", String(16), nullable=False),
    Column("name", Text),
    Column("start_ns", BigInteger, nullable=False),
    Column("end_ns", BigInteger, nullable=False),
    Column("status", String(8), nullable=False),
    Column("project", String(256)),
    Column("model", String(256)),
    Column("tool", String(256)),
    Column("scenario", String(256)),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("input_chars", BigInteger),
    Column("output_chars", BigInteger),
    Column("tokens_estimated", Boolean, nullable=False),
    Column("error_type", Text),
    Column("error_message", Text),
    Column("error_class", String(64)),
    Column("failure_class", String(64)),
    Column("cluster_id", String(32)),
    Column("attributes", Text, nullable=False),
    # Migration 0020: the event's tags as the id of their set in ``tag_sets`` (NULL: no tags);
    # store/tag_sets.py reads them back as the JSON text ``tags``.
    Column("tag_set", Integer),
)

# The indexes the migrations create, declared here too, so tests/test_schema.py can prove the
# tables the code queries are exactly what the migrations build.
Index(
    "uq_events_run_event", events.c.run_id, unique=True,
    sqlite_where=events.c.kind == "run", postgresql_where=events.c.kind == "run",
)  # fmt: skip
# Migration 0006: the run list reads run events only (partial indexes); a run's own entries carry
# kind and tool (tool-call counts and the tool filter never read the table).
Index("ix_events_run_kind_tool", events.c.run_id, events.c.kind, events.c.tool)
_RUN: dict[str, Any] = {"sqlite_where": events.c.kind == "run", "postgresql_where": events.c.kind == "run"}
Index("ix_runs_start", events.c.start_ns, events.c.seq, **_RUN)
for _dim in RUN_DIMENSIONS:
    Index(f"ix_runs_{_dim}_start", events.c[_dim], events.c.start_ns, **_RUN)
# Migration 0017 (replacing 0016's two): regression attribution's selections of a member slice
# (store/regression_facets): the window's failed runs only, and the window's runs with their end
# (partial on end > start, which a slow-run query states, so failed-run queries keep theirs); the
# run dimensions, failure class and run_id in the index, so only the selected runs' rows are read.
_FAILED_RUN = (events.c.kind == "run") & (events.c.status == "error")
Index(
    "ix_runs_failed_cover", events.c.start_ns, events.c.project, events.c.scenario, events.c.model,
    events.c.failure_class, events.c.run_id, sqlite_where=_FAILED_RUN, postgresql_where=_FAILED_RUN,
)  # fmt: skip
_TIMED_RUN = (events.c.kind == "run") & (events.c.end_ns > events.c.start_ns)
Index(
    "ix_runs_timed_cover", events.c.start_ns, events.c.end_ns, events.c.project, events.c.scenario,
    events.c.model, events.c.run_id, sqlite_where=_TIMED_RUN, postgresql_where=_TIMED_RUN,
)  # fmt: skip
Index(
    "ix_events_cluster_start", events.c.cluster_id, events.c.start_ns,
    sqlite_where=events.c.cluster_id.is_not(None), postgresql_where=events.c.cluster_id.is_not(None),
)  # fmt: skip
# Migration 0018: a drill-down by error class walks that class's runs only (newest first).
Index(
    "ix_runs_class_start", events.c.failure_class, events.c.start_ns,
    sqlite_where=(events.c.kind == "run") & events.c.failure_class.is_not(None),
    postgresql_where=(events.c.kind == "run") & events.c.failure_class.is_not(None),
)  # fmt: skip
# Migration 0018: the run list's cluster filter: the cluster's failed runs, its steps' run ids.
Index(
    "ix_runs_cluster_failed", events.c.cluster_id, events.c.start_ns,
    sqlite_where=(events.c.kind == "run") & (events.c.status == "error"),
    postgresql_where=(events.c.kind == "run") & (events.c.status == "error"),
)  # fmt: skip
Index(
    "ix_steps_cluster_run", events.c.cluster_id, events.c.run_id, events.c.kind,
    sqlite_where=(events.c.kind != "run") & events.c.cluster_id.is_not(None),
    postgresql_where=(events.c.kind != "run") & events.c.cluster_id.is_not(None),
)  # fmt: skip
# Migration 0015: the failure-clusters report reads runs and failed, clustered events from these alone.
Index("ix_runs_start_outcome", events.c.start_ns, events.c.status, events.c.run_id, events.c.model,
      events.c.scenario, **_RUN)  # fmt: skip
_FAILED_CLUSTERED = (events.c.status == "error") & events.c.cluster_id.is_not(None)
Index(
    "ix_events_failed_cluster", events.c.run_id, events.c.kind, events.c.cluster_id, events.c.failure_class,
    events.c.tool, events.c.model, events.c.seq, sqlite_where=_FAILED_CLUSTERED, postgresql_where=_FAILED_CLUSTERED,
)  # fmt: skip

# Migration 0020: on SQLite the table is its primary key (WITHOUT ROWID): no second b-tree of rowids.
run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(128), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
    sqlite_with_rowid=False,
)
# Migration 0007: for PostgreSQL's semi-joins of the tool= and tag filters (docs/performance.md).
# PostgreSQL only since 0020: SQLite reads a run's tags by its primary key alone.
Index("ix_run_tags_key_value", run_tags.c.key, run_tags.c.value, run_tags.c.run_id).ddl_if(dialect="postgresql")
Index(
    "ix_events_tool_run", events.c.tool, events.c.run_id,
    sqlite_where=events.c.tool.is_not(None), postgresql_where=events.c.tool.is_not(None),
)  # fmt: skip

# Migration 0020: each distinct tag set of events once (JSON object text, sorted keys, as the API
# returns it), found by the SHA-256 of its text (hex). Written in the append transaction.
tag_sets = Table(
    "tag_sets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("tags", Text, nullable=False),
)


label_admissions = Table(
    "label_admissions",
    metadata,
    Column("label", String(64), primary_key=True),
    Column("value", String(256), primary_key=True),
    Column("admitted_ns", BigInteger, nullable=False),
)

# -- rollups (migration 0003; written by hypermindlabs.rollups, rebuildable from events) ---------
# A slice is one combination of dimension values of one cube; its id is a stable hash of the
# combination (hypermindlabs.rollups.facts.slice_id), so a rebuild reproduces every row.
rollup_slices = Table(
    "rollup_slices",
    metadata,
    Column("slice_id", BigInteger, primary_key=True, autoincrement=False),
    Column("level", String(8), nullable=False),
    Column("cube", String(16), nullable=False),
    Column("kind", String(16)),
    Column("project", String(256)),
    Column("scenario", String(256)),
    Column("model", String(256)),
    Column("tool", String(256)),
    Column("status", String(8), nullable=False),
    Column("failure_class", String(64)),
    Column("mkey", String(80)),
    Column("mvalue", String(256)),
)

Index("ix_rollup_slices_cube", rollup_slices.c.level, rollup_slices.c.cube)

# The member set (run tags as ``tag.<key>``, tools used as ``tool``) of ``full`` cube slices.
rollup_slice_members = Table(
    "rollup_slice_members",
    metadata,
    Column("slice_id", BigInteger, primary_key=True, autoincrement=False),
    Column("key", String(80), primary_key=True),
    Column("value", String(256), primary_key=True),
    sqlite_with_rowid=False,
)


# One row per (part, tier, bucket, slice) (migration 0011): the summed measures of that slice's
# facts in that bucket and their latency sketch, packed (hypermindlabs.core.sketch.pack: the
# log-mapped bins with their counts), so the table's size follows buckets × slices, not events.
# Percentiles are read from the sketches merged across buckets and slices. ``part`` is the cube
# (and step kind, hypermindlabs.rollups.facts.part_of): with time next in the key, a query reads
# one contiguous range, its cube's cells in its window.
rollup_cells = Table(
    "rollup_cells",
    metadata,
    Column("part", SmallInteger, primary_key=True, autoincrement=False),
    Column("tier", Integer, primary_key=True, autoincrement=False),
    Column("bucket_ns", BigInteger, primary_key=True, autoincrement=False),
    Column("slice_id", BigInteger, primary_key=True, autoincrement=False),
    *(Column(m, Double if m in ROLLUP_SQUARES else BigInteger, nullable=False) for m in ROLLUP_MEASURES),
    Column("sketch", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)

# -- OTLP ingest state (migration 0004; SQL in store/otlp_state.py, written by ingest/otlp.py) -----
# One row per trace ingested over OTLP: the run id it is stored under and whether its run event
# exists ("closed"), is awaited ("open": children stored, root not yet seen) or was synthesised from
# the children after the root timeout ("synthesized"). ``template`` holds the run-level project,
# scenario and tags read from the first spans, for the synthesised run.
otlp_traces = Table(
    "otlp_traces",
    metadata,
    Column("trace_id", String(32), primary_key=True),
    Column("run_id", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("first_seen_ns", BigInteger, nullable=False),
    Column("last_seen_ns", BigInteger, nullable=False),
    Column("template", Text, nullable=False),
)
Index("ix_otlp_traces_state_seen", otlp_traces.c.state, otlp_traces.c.last_seen_ns)

# Spans that fit no event kind, summarised, until their run event is written with them folded in.
otlp_held_spans = Table(
    "otlp_held_spans",
    metadata,
    Column("trace_id", String(32), primary_key=True),
    Column("span_id", String(16), primary_key=True),
    Column("run_id", String(128), nullable=False),
    Column("received_ns", BigInteger, nullable=False),
    Column("summary", Text, nullable=False),
)

# -- alerts (migration 0005; written by store/alerts.py from Alertmanager's webhook) ---------------
# One row per alert fingerprint in its latest state; labels and annotations as JSON text.
alerts = Table(
    "alerts",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("alertname", String(256), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("labels", Text, nullable=False),
    Column("annotations", Text, nullable=False),
    Column("starts_at_ns", BigInteger, nullable=False),
    Column("ends_at_ns", BigInteger),
    Column("generator_url", Text, nullable=False),
    Column("receiver", String(256), nullable=False),
    Column("received_at_ns", BigInteger, nullable=False),
)
Index("ix_alerts_status_starts", alerts.c.status, alerts.c.starts_at_ns)

# -- exported-series view (migration 0009; SQL in store/export_series.py, written by export/) ------
# One row per (series, slot) of what /metrics exposes, cumulative since the first event: a counter
# has slot 0; a histogram has slots 0..len(bounds) (non-cumulative bucket counts, the last is +Inf)
# and slot -1 (its sum). Values are integers (seconds are kept as microseconds, migration 0024) so a rebuild adds up
# to exactly what the incremental writes did. Bucket slots carry their latest exemplar.
export_series = Table(
    "export_series",
    metadata,
    Column("series_id", BigInteger, primary_key=True, autoincrement=False),
    Column("slot", SmallInteger, primary_key=True, autoincrement=False),
    Column("metric", String(96), nullable=False),
    Column("labels", Text, nullable=False),
    Column("value", BigInteger, nullable=False),
    Column("ex_ts_ns", BigInteger),
    Column("ex_run_id", String(128)),
    Column("ex_trace_id", String(32)),
    Column("ex_value", BigInteger),
)

# Label values admitted to the exported series, with when each was last seen: a label's budget
# counts only values seen within the admission window, so values of a flood that stopped expire.
export_labels = Table(
    "export_labels",
    metadata,
    Column("label", String(64), primary_key=True),
    Column("value", String(256), primary_key=True),
    Column("admitted_ns", BigInteger, nullable=False),
    Column("last_seen_ns", BigInteger, nullable=False),
)

# -- retention (migration 0012; SQL in store/retention.py, written by ``hypermind-obs prune``) ------
# One row per pruned scope ("events"): the raw events of runs started before ``pruned_before_ns``
# were deleted (their rollups and exported series stay); totals of what all prunes removed.
retention = Table(
    "retention",
    metadata,
    Column("scope", String(32), primary_key=True),
    Column("pruned_before_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    Column("runs_pruned", BigInteger, nullable=False),
    Column("events_pruned", BigInteger, nullable=False),
)
