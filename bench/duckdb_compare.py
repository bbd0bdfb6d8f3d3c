"""The yardstick of DESIGN §5: DuckDB (one thread) scanning the raw events for the same answer.

Loads the bench database's events into an in-memory DuckDB (through a CSV file: no extension
download needed), then answers the summary queries that map one-to-one onto a GROUP BY of raw
events, over the API's *effective* window (its ``from_ms``/``to_ms``), with exact quantiles
(``quantile_disc``). Returns per query the DuckDB time and the API's largest relative quantile
error and whether every row's count matched. Bench-only: ``pip install -e .[bench]``.
"""

from __future__ import annotations

import csv
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

COLUMNS = ("kind", "start_ns", "end_ns", "status", "project", "model", "tool", "scenario")

# name -> (API url, level kind, group column or None, extra SQL condition)
COMPARABLE: dict[str, tuple[str, str, str | None, str]] = {
    "summary 24h (default)": ("/api/v1/metrics/summary", "run", None, ""),
    "summary 14d": ("/api/v1/metrics/summary?from=now-14d", "run", None, ""),
    "summary 14d by project": ("/api/v1/metrics/summary?from=now-14d&group_by=project", "run", "project", ""),
    "summary 24h project filter by model": (
        "/api/v1/metrics/summary?project=acme-support&group_by=model",
        "run",
        "model",
        "AND project = 'acme-support'",
    ),
    "summary 14d tool steps by tool": (
        "/api/v1/metrics/summary?from=now-14d&kind=tool&group_by=tool",
        "tool",
        "tool",
        "",
    ),
}


def load(db: Path) -> Any:
    import duckdb

    con = duckdb.connect(":memory:", config={"threads": 1})
    with tempfile.NamedTemporaryFile("w", suffix=".csv", newline="", delete=False) as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        src = sqlite3.connect(db)
        for row in src.execute(f"SELECT {', '.join(COLUMNS)} FROM events"):
            w.writerow(["" if v is None else v for v in row])
        src.close()
    types = {c: "VARCHAR" for c in COLUMNS} | {"start_ns": "BIGINT", "end_ns": "BIGINT"}
    con.execute(f"CREATE TABLE events AS SELECT * FROM read_csv('{fh.name}', header=true, nullstr='', columns={types})")
    Path(fh.name).unlink()
    return con


def compare(con: Any, client: Any, name: str, repeat: int) -> dict[str, Any]:
    url, kind, group, extra = COMPARABLE[name]
    api = client.get(url).get_json()
    by = f"{group}," if group else ""
    sql = f"""
        SELECT {by} count(*) AS n,
               quantile_disc((end_ns - start_ns) / 1e6, [0.5, 0.95, 0.99]) AS q
        FROM events WHERE kind = '{kind}' AND start_ns >= {api["from_ms"]} * 1000000
             AND start_ns < {api["to_ms"]} * 1000000 {extra}
        {"GROUP BY " + group if group else ""}"""
    times = []
    for _ in range(repeat + 1):
        t = time.perf_counter()
        rows = con.execute(sql).fetchall()
        times.append((time.perf_counter() - t) * 1000)
    exact = {(r[0] if group else None): (r[-2], r[-1]) for r in rows}
    worst, counts_ok = 0.0, True
    for row in api["rows"]:
        key = row["group"].get(group) if group else None
        if key not in exact:
            counts_ok &= row["count"] == 0
            continue
        n, qs = exact[key]
        counts_ok &= row["count"] == n
        for got, want in zip((row["latency_ms"][p] for p in ("p50", "p95", "p99")), qs, strict=True):
            if got is not None and want:
                worst = max(worst, abs(got - want) / want)
    return {"duckdb_ms": statistics.median(times[1:]), "quantile_error": worst, "counts_equal": counts_ok}
