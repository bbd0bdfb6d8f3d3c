"""The yardstick of DESIGN §5: DuckDB (one thread) scanning the raw events for the same answer.

Loads the bench database's events (and run tags) into an in-memory DuckDB (through CSV files: no
extension download needed), then answers every dashboard query of ``bench/query.py`` from the raw
events, over the API's *effective* window (its ``from_ms``/``to_ms``), with exact nearest-rank
quantiles (``quantile_disc``), the rollups' semantics included: a step is dated by its run's start
and counts once its run is stored; "by tool used" counts a run under every tool it used; the
error-class group is the failure class, ``unknown`` for a failure without one. Returns per query
the DuckDB time, the API's largest relative p50/p95/p99 error against DuckDB's exact answer
(every row, every point) and whether every count matched. Bench-only: ``pip install -e .[bench]``.
"""

from __future__ import annotations

import csv
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

_EVENT_COLUMNS = ("run_id", "kind", "start_ns", "end_ns", "status", "project", "model", "tool", "scenario",
                  "failure_class")  # fmt: skip
_RUN_ERROR_CLASS = "coalesce(r.failure_class, CASE WHEN r.status = 'error' THEN 'unknown' END)"

# name -> (level: run | step kind, group expression or None, joins, extra condition, timeseries)
COMPARABLE: dict[str, tuple[str, str | None, str, str, bool]] = {
    "summary 24h (default)": ("run", None, "", "", False),
    "summary 14d": ("run", None, "", "", False),
    "summary 14d by project": ("run", "r.project", "", "", False),
    "summary 24h project filter by model": ("run", "r.model", "", "AND r.project = 'acme-support'", False),
    "summary 7d by tool used": ("run", "u.tool", "JOIN tools_used u ON u.run_id = r.run_id", "", False),
    "summary 7d one tag by error class": (
        "run", _RUN_ERROR_CLASS,
        "JOIN run_tags t1 ON t1.run_id = r.run_id AND t1.key = 'env' AND t1.value = 'prod'", "", False,
    ),
    "summary 24h two tags (full cube)": (
        "run", None,
        "JOIN run_tags t1 ON t1.run_id = r.run_id AND t1.key = 'env' AND t1.value = 'prod' "
        "JOIN run_tags t2 ON t2.run_id = r.run_id AND t2.key = 'tier' AND t2.value = 'pro'", "", False,
    ),
    "summary 14d tool steps by tool": ("tool", "s.tool", "", "", False),
    "timeseries 24h (auto 15m)": ("run", None, "", "", True),
    "timeseries 14d (auto 3h)": ("run", None, "", "", True),
    "timeseries 24h by project": ("run", "r.project", "", "", True),
    "timeseries 1h (auto 1m)": ("run", None, "", "", True),
    "timeseries 24h llm steps by model": ("llm", "s.model", "", "", True),
}
_API_GROUP = {"r.project": "project", "r.model": "model", "u.tool": "tool", "s.tool": "tool", "s.model": "model",
              _RUN_ERROR_CLASS: "error_class"}  # fmt: skip


def _csv(rows: Any, columns: tuple[str, ...]) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".csv", newline="", delete=False) as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for row in rows:
            w.writerow(["" if v is None else v for v in row])
    return fh.name


def load(db: Path) -> Any:
    import duckdb

    con = duckdb.connect(":memory:", config={"threads": 1})
    src = sqlite3.connect(db)
    files = {
        "events": (_csv(src.execute(f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events"), _EVENT_COLUMNS),
                   _EVENT_COLUMNS),
        "run_tags": (_csv(src.execute("SELECT run_id, key, value FROM run_tags"), ("run_id", "key", "value")),
                     ("run_id", "key", "value")),
    }  # fmt: skip
    src.close()
    for table, (path, cols) in files.items():
        types = {c: "VARCHAR" for c in cols} | {"start_ns": "BIGINT", "end_ns": "BIGINT"}
        types = {c: t for c, t in types.items() if c in cols}
        con.execute(
            f"CREATE TABLE {table} AS SELECT * FROM read_csv('{path}', header=true, nullstr='', columns={types})"
        )
        Path(path).unlink()
    # Plain tables the queries scan (built once, like any columnar layout of the raw events).
    con.execute("CREATE TABLE runs AS SELECT * FROM events WHERE kind = 'run'")
    con.execute(
        "CREATE TABLE steps AS SELECT s.*, r.start_ns AS run_start_ns FROM events s "
        "JOIN runs r ON r.run_id = s.run_id WHERE s.kind <> 'run'"
    )
    con.execute("CREATE TABLE tools_used AS SELECT DISTINCT run_id, tool FROM events WHERE tool IS NOT NULL")
    return con


def _sql(name: str, api: dict[str, Any]) -> str:
    level, group, joins, extra, series = COMPARABLE[name]
    lo, hi = api["from_ms"] * 1_000_000, api["to_ms"] * 1_000_000
    if level == "run":
        src, start, dur = "runs r", "r.start_ns", "(r.end_ns - r.start_ns)"
    else:
        src, start, dur = "steps s", "s.run_start_ns", "(s.end_ns - s.start_ns)"
        extra = f"AND s.kind = '{level}' {extra}"
    keys = [group] if group else []
    if series:
        keys.append(f"({start} - {lo}) // {api['step_seconds'] * 1_000_000_000}")
    sel = "".join(f"{k} AS k{i}, " for i, k in enumerate(keys))
    by = f"GROUP BY {', '.join(f'k{i}' for i in range(len(keys)))}" if keys else ""
    return (f"SELECT {sel}count(*) AS n, quantile_disc({dur} / 1e6, [0.5, 0.95, 0.99]) AS q FROM {src} {joins} "
            f"WHERE {start} >= {lo} AND {start} < {hi} {extra} {by}")  # fmt: skip


def _api_rows(name: str, api: dict[str, Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The API's rows (or points) keyed like the SQL's groups."""
    _, group, _, _, series = COMPARABLE[name]
    field = _API_GROUP.get(group) if group else None
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    if not series:
        for row in api["rows"]:
            out[(row["group"][field],) if field else ()] = row
        return out
    for s in api["series"]:
        for i, point in enumerate(s["points"]):
            if point["count"]:
                out[((s["group"][field],) if field else ()) + (i,)] = point
    return out


def compare(con: Any, client: Any, name: str, url: str, repeat: int) -> dict[str, Any]:
    api = client.get(url).get_json()
    sql = _sql(name, api)
    times = []
    for _ in range(repeat + 1):
        t = time.perf_counter()
        rows = con.execute(sql).fetchall()
        times.append((time.perf_counter() - t) * 1000)
    exact = {tuple(r[:-2]): (r[-2], r[-1]) for r in rows}
    got = _api_rows(name, api)
    worst, counts_ok = 0.0, True
    if api.get("truncated"):  # the API's top rows only: compare those
        exact = {k: v for k, v in exact.items() if k in got}
    counts_ok &= set(got) == set(exact)
    for key, (n, qs) in exact.items():
        row = got.get(key)
        if row is None:
            continue
        counts_ok &= row["count"] == n
        for v, want in zip((row["latency_ms"][p] for p in ("p50", "p95", "p99")), qs, strict=True):
            if v is not None and want:
                worst = max(worst, abs(v - want) / want)
    return {"duckdb_ms": statistics.median(times[1:]), "quantile_error": worst, "counts_equal": counts_ok,
            "groups": len(exact)}  # fmt: skip
