"""Table definitions used by queries. The migrations under ``migrations/versions`` create them."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Integer, MetaData, String, Table, Text

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
    Column("tags", Text, nullable=False),
    Column("attributes", Text, nullable=False),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(128), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

EVENT_COLUMNS: tuple[str, ...] = tuple(c.name for c in events.columns if c.name != "seq")

label_admissions = Table(
    "label_admissions",
    metadata,
    Column("label", String(64), primary_key=True),
    Column("value", String(256), primary_key=True),
    Column("admitted_ns", BigInteger, nullable=False),
)
