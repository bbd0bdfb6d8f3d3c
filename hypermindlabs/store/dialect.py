"""Every difference between SQLite and PostgreSQL, in one module.

- engines: URL forms users type, SQLite's WAL pragmas and single writer, PostgreSQL's pool;
- bulk writes: SQLite runs one compiled statement with the DBAPI's ``executemany``; PostgreSQL
  streams the rows with ``COPY … FROM STDIN (FORMAT BINARY)`` (psycopg's ``executemany`` would
  cost a server round of parse/execute per row), straight into the table when nothing can
  conflict, else into a per-session staging table that one ``INSERT … SELECT … ON CONFLICT``
  (or ``UPDATE … FROM``) then empties. ``COPY`` took 4–6 µs a 15-column row where one statement
  of binary ``unnest`` arrays took 10–13 (psycopg types every element of a Python list; ``COPY``
  is told the column types once);
- upserts: ``ON CONFLICT`` built with each dialect's own ``insert`` construct;
- locks: PostgreSQL writers run concurrently and take transaction-scoped advisory locks (or table
  locks) where they must serialize; SQLite already has a single writer, so those are no-ops;
- read deadlines (:mod:`~hypermindlabs.store.deadline`): PostgreSQL gets ``SET LOCAL
  statement_timeout`` before each statement, so the server cancels it; SQLite a progress handler
  that interrupts the query; and how each says a statement was cut.

Nothing outside the store imports this module.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import psycopg
from sqlalchemy import BigInteger, Table, and_, bindparam, case, create_engine, event, or_, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from hypermindlabs.store import deadline

__all__ = [
    "CACHED_TABLE_COST",
    "with_begin",
    "bulk_update",
    "normalize_url",
    "open_engine",
    "single_writer",
    "bulk_write",
    "advisory_xact_lock",
    "lock_tables_exclusive",
    "lock_key",
    "is_postgresql",
    "write_lock_free",
    "insert_for",
    "install_read_deadlines",
    "is_read_timeout",
    "insert_new",
    "keyed_reads_only",
    "rows_by_keys",
    "int_sum",
    "in_ids",
]

Conflict = Literal["error", "ignore", "add", "add_latest", "replace"]


def normalize_url(url: str) -> str:
    """Accept the URLs users type (``postgresql://``, ``postgres://``, a bare path) for SQLAlchemy."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if "://" not in url:
        url = "sqlite:///" + url
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, busy_timeout_ms: int = 30_000) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers (the dashboard) run while the ingest path writes; NORMAL is durable
    # across application crashes, which is the guarantee an observability store needs.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    # How long a writer waits for another's lock; past it the write fails and the app answers 503.
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cur.close()


def open_engine(url: str, *, busy_timeout_ms: int = 30_000) -> Engine:
    """An engine for ``url`` (SQLite file or PostgreSQL), configured for this store."""
    url = normalize_url(url)
    sa_url = make_url(url)
    engine_kwargs: dict[str, Any] = {"future": True}
    if sa_url.get_backend_name() == "sqlite":
        if sa_url.database and sa_url.database != ":memory:":
            Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": busy_timeout_ms / 1000, "check_same_thread": False}
    else:
        # A connection that died with the server is replaced at checkout (see _pg_checkout), so
        # the app recovers by itself when PostgreSQL returns; connect_timeout bounds a hung connect.
        engine_kwargs.update(pool_size=8, max_overflow=8, connect_args={"connect_timeout": 5})
    engine = create_engine(url, **engine_kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", lambda c, r: _sqlite_pragmas(c, r, busy_timeout_ms))
    else:
        event.listen(engine, "checkout", _pg_checkout)
        event.listen(engine, "checkin", _pg_checkin)
    install_read_deadlines(engine)
    return engine


#: A pooled PostgreSQL connection idle longer than this is pinged at checkout (s).
_PING_AFTER_IDLE_S = 1.0
_LAST_USED = "hypermind.last_used"


def _pg_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """SQLAlchemy's ``pool_pre_ping``, for connections idle past :data:`_PING_AFTER_IDLE_S` only.

    The ping is a round trip (an empty query) before every answer otherwise: 0.2 ms of a 5 ms
    summary on loopback, more across a network. A connection returned healthy within the last
    second is used as it is; if the server went away meanwhile, its statement fails like any
    other that loses the server (503, and SQLAlchemy invalidates the pool's older connections).
    A failed ping makes the pool replace the connection (``DisconnectionError``), as pre_ping did.
    """
    used = record.info.get(_LAST_USED)
    if used is not None and time.monotonic() - used <= _PING_AFTER_IDLE_S:
        return
    pgconn = dbapi_conn.pgconn
    ok = pgconn.status == psycopg.pq.ConnStatus.OK
    if ok:
        res = pgconn.exec_(b"")  # an empty query: answered, opens no transaction
        ok = res.status == psycopg.pq.ExecStatus.EMPTY_QUERY and pgconn.status == psycopg.pq.ConnStatus.OK
    if not ok:
        raise sa_exc.DisconnectionError("the PostgreSQL connection did not answer a ping")


def _pg_checkin(dbapi_conn: Any, record: Any) -> None:
    if record is not None:
        record.info[_LAST_USED] = time.monotonic()


def begin_snapshot(conn: Connection) -> Connection:
    """Make every statement on the fresh read connection ``conn`` see one snapshot of the store.

    An answer that reads the rollup slices and then their cells in several statements must not
    see a writer's commit land between them (a cell of a slice the first statement did not see).
    PostgreSQL: a ``REPEATABLE READ READ ONLY`` transaction (read-only work never fails to
    serialize). SQLite: an explicit deferred ``BEGIN``, so the WAL read snapshot of the first
    statement holds until the connection ends (the driver runs SELECTs outside any transaction
    otherwise). Call before the first statement; returns the connection to use.
    """
    if conn.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    conn.exec_driver_sql("BEGIN")
    return conn


#: The cached-table cost of :func:`planned_for_their_values`, for this transaction only.
CACHED_TABLE_COST = (
    "SELECT set_config('random_page_cost', least(current_setting('random_page_cost')::float8, 1.1)::text, true)"
)


@contextmanager
def planned_for_their_values(conn: Connection, *, set_cost: bool = True) -> Iterator[None]:
    """PostgreSQL: plan the statements run in this block for their own parameter values, costing
    index lookups as for tables held in memory (the rest of the read transaction keeps the cost:
    ``set_cost=False`` when this transaction has set it already, saving the round trip).

    For the rollup reads that join each cell of a window to its slice and members (the ``tags`` and
    ``full`` cubes). Prepared, such a statement runs PostgreSQL's generic plan, costed for a guessed
    64 cells: nested loops of three key lookups per cell whatever the window holds (24 h, two tags,
    1M events: 3,775 cells, ~25 ms). Planned for its values at the server default
    ``random_page_cost = 4`` it hashes all 39,196 slices instead; at 1.1 (a cached working set; a
    server tuned lower keeps its own) it looks each slice up once and memoizes the members' probes.
    Measured in process, in turns (docs/performance.md § Sixth session): two tags 38.2 → 26.1 ms,
    two tags by tool 112.3 → 67.3 ms, answers identical. Costs a plan per statement.
    SQLite: nothing.
    """
    if conn.dialect.name != "postgresql":
        yield
        return
    if set_cost:
        conn.exec_driver_sql(CACHED_TABLE_COST)
    driver = conn.connection.driver_connection
    kept = driver.prepare_threshold  # type: ignore[union-attr]
    driver.prepare_threshold = None  # type: ignore[union-attr]  # psycopg: run unprepared, planned afresh
    try:
        yield
    finally:
        driver.prepare_threshold = kept  # type: ignore[union-attr]


def end_read(conn: Connection) -> None:
    """End the read transaction of ``conn`` (it wrote nothing) after its last statement.

    PostgreSQL: COMMIT it. A ROLLBACK (what closing the connection sends) ends it just the same,
    but psycopg forgets every prepared statement of the connection at a ROLLBACK: each statement
    of each answer was then parsed and planned afresh, where SQLite reuses its compiled
    statements. SQLite: nothing (closing rolls back as before).
    """
    if conn.dialect.name == "postgresql" and conn.in_transaction():
        conn.commit()


def write_lock_free(engine: Engine, *, wait_ms: int = 200) -> str | None:
    """SQLite: None when this process could take the write lock now, else the driver's reason.

    Takes ``BEGIN IMMEDIATE`` (the write lock, nothing written) with a short wait and rolls back:
    the liveness check of a store whose reads work while another process holds the writers out.
    PostgreSQL has no single write lock; a successful ping says enough there (None).
    """
    if engine.dialect.name != "sqlite":
        return None
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        before = int(cur.execute("PRAGMA busy_timeout").fetchone()[0])
        cur.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
        try:
            raw.commit()  # no transaction of the driver's own may be open before BEGIN
            cur.execute("BEGIN IMMEDIATE")
            cur.execute("ROLLBACK")
            return None
        except Exception as exc:  # noqa: BLE001 - sqlite3.OperationalError: "database is locked"
            return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        finally:
            cur.execute(f"PRAGMA busy_timeout={before}")
            cur.close()
    finally:
        raw.close()


def is_postgresql(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "postgresql"


def insert_for(bind: Engine | Connection, table: Table) -> Any:
    """The dialect's own INSERT construct for ``table``: the one with ``on_conflict_do_update``."""
    if bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if bind.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    raise ValueError(f"the store supports sqlite and postgresql, not {bind.dialect.name}")  # pragma: no cover


def single_writer(engine: Engine) -> bool:
    """Whether the database has one writer at a time (SQLite): the store then serializes its own
    threads instead of letting them wait on the database lock."""
    return engine.dialect.name == "sqlite"


# -- bulk writes --------------------------------------------------------------------------------
_COMPILED: dict[tuple[Any, ...], tuple[str, Any]] = {}


def _statement(
    conn: Connection, table: Table, cols: tuple[str, ...], conflict: Conflict, keys: tuple[str, ...],
    add: tuple[str, ...], latest: tuple[str, ...] = (),
) -> tuple[str, list[str] | None]:
    """The compiled INSERT (and its positional parameter order), once per dialect and shape."""
    cache_key = (conn.dialect.name, table.name, cols, conflict, keys, add, latest)
    hit = _COMPILED.get(cache_key)
    if hit is None:
        insert: Any
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif conn.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover - the store only opens these two
            raise ValueError(f"the store supports sqlite and postgresql, not {conn.dialect.name}")
        stmt: Any = insert(table)
        if conflict == "ignore":
            stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        elif conflict == "replace":  # every column not in ``keys`` takes the new value
            stmt = stmt.on_conflict_do_update(
                index_elements=list(keys), set_={c: stmt.excluded[c] for c in cols if c not in keys}
            )
        elif conflict == "add":
            stmt = stmt.on_conflict_do_update(
                index_elements=list(keys), set_={c: table.c[c] + stmt.excluded[c] for c in add}
            )
        elif conflict == "add_latest":
            # ``latest[0]`` orders (a timestamp), ``latest[1]`` then ``latest[-1]`` break ties (a
            # total order: the same winner whatever order rows come in); the other ``latest``
            # columns follow them. Every right-hand side reads the row as it was before the update.
            ts, tie, last = table.c[latest[0]], table.c[latest[1]], table.c[latest[-1]]
            new_ts, new_tie, new_last = stmt.excluded[latest[0]], stmt.excluded[latest[1]], stmt.excluded[latest[-1]]
            newer = and_(
                new_ts.is_not(None),
                or_(ts.is_(None), new_ts > ts, and_(new_ts == ts, or_(
                    new_tie > tie, and_(new_tie == tie, new_last > last)))),
            )  # fmt: skip
            set_: dict[str, Any] = {c: table.c[c] + stmt.excluded[c] for c in add}
            set_.update({c: case((newer, stmt.excluded[c]), else_=table.c[c]) for c in latest})
            stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=set_)
        compiled = stmt.compile(dialect=conn.dialect, column_keys=list(cols))
        hit = _COMPILED[cache_key] = (str(compiled), list(compiled.positiontup) if compiled.positional else None)
    return hit


def bulk_write(
    conn: Connection,
    table: Table,
    cols: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    conflict: Conflict = "error",
    keys: Sequence[str] = (),
    add: Sequence[str] = (),
    latest: Sequence[str] = (),
) -> None:
    """INSERT ``rows`` (tuples in ``cols`` order) into ``table`` in one statement (PostgreSQL) or one
    ``executemany`` (SQLite), skipping SQLAlchemy's per-row parameter processing (values are plain).

    ``conflict``: ``error`` (an IntegrityError, raised the SQLAlchemy way), ``ignore`` (ON CONFLICT
    DO NOTHING on ``keys``), ``add`` (ON CONFLICT DO UPDATE ``add`` columns += the new values) or
    ``replace`` (ON CONFLICT DO UPDATE every other column = the new value).
    With ``add``, keys must be unique within ``rows`` (PostgreSQL refuses to update a row twice in
    one statement). ``add_latest`` adds ``add`` and keeps the ``latest`` columns of whichever row
    is newer by ``latest[0]`` (ties broken by ``latest[1]``, then ``latest[-1]``): a cumulative value and its
    latest exemplar.
    """
    if not rows:
        return
    cols_t = tuple(cols)
    sql, order = _statement(conn, table, cols_t, conflict, tuple(keys), tuple(add), tuple(latest))
    if conn.dialect.name == "postgresql":
        _copy_insert(conn, table, cols_t, rows, _conflict_clause(sql))
        return
    params: Any
    if order is None:
        params = [dict(zip(cols_t, r, strict=True)) for r in rows]
    elif order == list(cols_t):
        params = rows
    else:
        idx = [cols_t.index(k) for k in order]
        params = [tuple(r[i] for i in idx) for r in rows]
    conn.exec_driver_sql(sql, params)


def bulk_update(
    conn: Connection, table: Table, keys: Sequence[str], cols: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """UPDATE the rows of ``table`` whose ``keys`` match: ``rows`` are tuples of (keys…, cols…), each
    naming one existing row (its primary key) and its new values.

    PostgreSQL: the rows ``COPY``-ed into a staging table, then one ``UPDATE … FROM`` it.
    SQLite: one ``executemany`` of ``UPDATE … WHERE key = ?``.
    """
    if not rows:
        return
    keys_t, cols_t = tuple(keys), tuple(cols)
    if conn.dialect.name == "postgresql":
        names = [*keys_t, *cols_t]
        sets = ", ".join(f"{c} = v.{c}" for c in cols_t)
        on = " AND ".join(f"t.{k} = v.{k}" for k in keys_t)
        conn.exec_driver_sql(
            f"WITH v AS ({_staged(conn, table, names, rows)}) UPDATE {table.name} AS t SET {sets} FROM v WHERE {on}"
        )
        return
    sql = _UPDATES.get((table.name, keys_t, cols_t))
    if sql is None:
        sql = _UPDATES[table.name, keys_t, cols_t] = (
            f"UPDATE {table.name} SET {', '.join(f'{c} = ?' for c in cols_t)} "
            f"WHERE {' AND '.join(f'{k} = ?' for k in keys_t)}"
        )
    nk = len(keys_t)
    cursor = _driver_cursor(conn)
    try:
        cursor.executemany(sql, [(*r[nk:], *r[:nk]) for r in rows])
    finally:
        cursor.close()


_UPDATES: dict[tuple[str, tuple[str, ...], tuple[str, ...]], str] = {}


def _conflict_clause(compiled_sql: str) -> str:
    """The ``ON CONFLICT …`` tail of a compiled INSERT (empty when it has none)."""
    at = compiled_sql.find(" ON CONFLICT ")
    if at < 0:
        return ""
    tail = compiled_sql[at:]
    ret = tail.find(" RETURNING ")
    return tail if ret < 0 else tail[:ret]


def _binary_arrays(conn: Connection, table: Table, cols: Sequence[str]) -> str:
    """psycopg binary array parameters, one per column, cast to the column's array type (``unnest``)."""
    compile_type = conn.dialect.type_compiler_instance.process
    return ", ".join(f"%b::{compile_type(table.c[c].type)}[]" for c in cols)


def _driver_cursor(conn: Connection) -> Any:
    """A psycopg cursor on the connection's transaction (for statements SQLAlchemy cannot bind as arrays)."""
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


def _copy_types(conn: Connection, table: Table, cols: Sequence[str]) -> list[str]:
    """The PostgreSQL type names ``COPY``'s binary dumpers take for these columns (``varchar(256)``
    goes as ``text``: the same binary form), once per table and column list."""
    key = (table.name, tuple(cols))
    hit = _COPY_TYPE_CACHE.get(key)
    if hit is None:
        compile_type = conn.dialect.type_compiler_instance.process
        names = (compile_type(table.c[c].type).lower().split("(")[0].strip() for c in cols)
        hit = _COPY_TYPE_CACHE[key] = [_COPY_TYPES.get(n, n) for n in names]
    return list(hit)


_COPY_TYPE_CACHE: dict[tuple[str, tuple[str, ...]], list[str]] = {}
_COPY_TYPES = {
    "bigint": "int8", "smallint": "int2", "integer": "int4", "varchar": "text", "boolean": "bool",
    "double precision": "float8", "float": "float8",
}  # fmt: skip


def _copy_in(conn: Connection, target: str, table: Table, cols: Sequence[str], rows: Sequence[Sequence[Any]], *,
             numbered: bool = False) -> None:  # fmt: skip
    """Stream ``rows`` into ``target`` (``table`` or its staging table) with binary ``COPY``;
    ``numbered`` adds each row's position in ``rows`` as the last column (``hm_row``)."""
    types = _copy_types(conn, table, cols)
    names = ", ".join(cols)
    if numbered:
        types.append("int8")
        names += ", hm_row"
    cursor = _driver_cursor(conn)
    try:
        with cursor.copy(f"COPY {target} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            if numbered:
                for i, row in enumerate(rows):
                    copy.write_row((*row, i))
            else:
                for row in rows:
                    copy.write_row(row)
    except psycopg.IntegrityError as exc:
        # Raised the way SQLAlchemy would, so the store's retry on a concurrent writer applies.
        raise sa_exc.IntegrityError(f"COPY {target}", None, exc) from exc
    finally:
        cursor.close()


def _staged(conn: Connection, table: Table, cols: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """``rows`` copied into this session's staging table for ``table`` and ``cols``; returns a
    ``DELETE … RETURNING`` of them, to use as a CTE (``WITH v AS (…)``) that also empties it.

    A temporary table (this session only, emptied at commit too) of just these columns, without
    their constraints, plus ``hm_row``, each row's position in ``rows``: a DELETE returns rows in no
    set order, and an INSERT must take them ``ORDER BY hm_row`` so that defaults drawn from a
    sequence (``events.seq``, the store's order) follow the batch as on SQLite. Created once per
    session and shape, never visible to other connections.
    """
    digest = hashlib.sha256(",".join([*cols, "hm_row"]).encode()).hexdigest()[:10]
    stage = f"hm_stage_{table.name}_{digest}"
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
        f"SELECT {', '.join(cols)}, CAST(0 AS bigint) AS hm_row FROM {table.name} WITH NO DATA"
    )
    _copy_in(conn, stage, table, cols, rows, numbered=True)
    # The staging table has no statistics and, under keyed_reads_only, a sequential scan priced
    # out: the plan's cost passes jit_above_cost, and JIT compiling took 85–135 ms a statement.
    conn.exec_driver_sql("SET LOCAL jit = off")
    return f"DELETE FROM {stage} RETURNING {', '.join(cols)}, hm_row"


def _copy_insert(
    conn: Connection, table: Table, cols: Sequence[str], rows: Sequence[Sequence[Any]], conflict: str = ""
) -> Any:
    """PostgreSQL's bulk INSERT: ``COPY`` straight in (returns None), or through the staging table
    when ``conflict`` (``ON CONFLICT …`` and any ``RETURNING``) is given (returns its result)."""
    if not conflict:
        _copy_in(conn, table.name, table, cols, rows)
        return None
    names = ", ".join(cols)
    staged = _staged(conn, table, cols, rows)
    # An IntegrityError comes wrapped the SQLAlchemy way (the store's retry on a concurrent writer).
    return conn.exec_driver_sql(
        f"WITH v AS ({staged}) INSERT INTO {table.name} ({names}) SELECT {names} FROM v ORDER BY hm_row{conflict}"
    )


def insert_new(conn: Connection, table: Table, cols: Sequence[str], rows: Sequence[Sequence[Any]],
               key: str) -> set[Any] | None:  # fmt: skip
    """INSERT ``rows`` skipping any that hit a unique constraint (``ON CONFLICT DO NOTHING``, no
    pre-check query, so nothing depends on the planner's statistics); the ``key`` values of the rows
    *not* inserted, or None when the driver cannot tell which (SQLite's ``executemany``: then some
    were skipped when the set is non-empty). Empty when every row went in.

    PostgreSQL: the rows ``COPY``-ed into a staging table, then one ``INSERT … SELECT … RETURNING
    key``. SQLite: one ``executemany``, whose row count is the number of rows inserted.
    """
    if not rows:
        return set()
    cols_t = tuple(cols)
    if conn.dialect.name == "postgresql":
        inserted = {r[0] for r in _copy_insert(conn, table, cols_t, rows, f" ON CONFLICT DO NOTHING RETURNING {key}")}
        at = cols_t.index(key)
        return {r[at] for r in rows if r[at] not in inserted}
    sql = _INSERT_IGNORE.get((table.name, cols_t))
    if sql is None:
        sql = _INSERT_IGNORE[table.name, cols_t] = (
            f"INSERT INTO {table.name} ({', '.join(cols_t)}) VALUES ({', '.join('?' * len(cols_t))}) "
            "ON CONFLICT DO NOTHING"
        )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, rows)
        n = cursor.rowcount
    finally:
        cursor.close()
    return set() if n == len(rows) else None


_INSERT_IGNORE: dict[tuple[str, tuple[str, ...]], str] = {}


def rows_by_keys(conn: Connection, table: Table, key_cols: Sequence[str], keys: Sequence[Sequence[Any]],
                 cols: Sequence[str], *, chunk: int = 500) -> list[tuple[Any, ...]]:  # fmt: skip
    """The ``cols`` of the rows of ``table`` whose ``key_cols`` equal one of ``keys`` (a composite
    primary key): one probe of the key's index per key, in no particular order.

    PostgreSQL: one statement, the keys sent as one array per key column and ``unnest``-ed into the
    join (a ``VALUES`` list would bind four parameters per key, chunk after chunk; ``COPY``-ing
    them into a staging table was no faster: the cost is the index probes). SQLite: a join
    on ``VALUES`` rows, ``chunk`` keys a statement (it scans the table for a row-value ``IN`` list).
    """
    if not keys:
        return []
    sel = ", ".join(f"c.{k}" for k in cols)
    on = " AND ".join(f"c.{k} = v.k{i}" for i, k in enumerate(key_cols))
    names = ", ".join(f"k{i}" for i in range(len(key_cols)))
    if conn.dialect.name == "postgresql":
        arrays = _binary_arrays(conn, table, key_cols)
        sql = f"SELECT {sel} FROM unnest({arrays}) AS v({names}) JOIN {table.name} AS c ON {on}"
        cursor = _driver_cursor(conn)
        try:
            cursor.execute(sql, [list(col) for col in zip(*keys, strict=True)])
            return cursor.fetchall()
        finally:
            cursor.close()
    out: list[tuple[Any, ...]] = []
    row_marks = f"({', '.join('?' * len(key_cols))})"
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for i in range(0, len(keys), chunk):
            part = keys[i : i + chunk]
            sql = (f"WITH v({names}) AS (VALUES {', '.join([row_marks] * len(part))}) "
                   f"SELECT {sel} FROM v JOIN {table.name} AS c ON {on}")  # fmt: skip
            out += cursor.execute(sql, [x for k in part for x in k]).fetchall()
    finally:
        cursor.close()
    return out


def keyed_reads_only(conn: Connection) -> None:
    """Plan this transaction's reads as index lookups, whatever the statistics say (PostgreSQL).

    The append transaction reads events only by indexed keys (run_id, event_id lists of a batch).
    On a table never analysed the planner prices ``run_id IN (600 ids)`` as most of the table and
    scans it all, so each batch gets slower as the table grows (issue #8: 1.1 s → 11.7 s). With
    sequential scans priced out (``SET LOCAL``: this transaction only) every such read is an index
    lookup, flat in the table's size, with or without ``ANALYZE``. SQLite always uses the index.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")


# -- locks --------------------------------------------------------------------------------------
def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (no ``hash()``: it is salted per process)."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def advisory_xact_lock(conn: Connection, key: int) -> None:
    """Serialize with other PostgreSQL writers holding ``key`` in this store until this transaction ends.

    Advisory locks belong to the whole database, not to a schema: the key is mixed with the
    store's schema (``current_schema()``), so stores in other schemas of one database (several
    deployments, a test suite's parallel workers) never wait on each other's writers.

    SQLite: nothing to do, the transaction already holds the database's single writer lock once
    it writes (and the store serializes its own writers).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':' || CAST(:k AS text), 0))"),
            {"k": key},
        )


def lock_tables_exclusive(conn: Connection, tables: Sequence[Table]) -> None:
    """Make writers of ``tables`` wait until this transaction commits; readers go on (PostgreSQL
    EXCLUSIVE mode). SQLite: its single writer lock already does this."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"LOCK TABLE {', '.join(t.name for t in tables)} IN EXCLUSIVE MODE"))


# -- integer sums -------------------------------------------------------------------------------
class int_sum(FunctionElement[int]):  # noqa: N801 - used like func.sum
    """``sum()`` of an integer column that stays an integer: PostgreSQL's ``sum(bigint)`` is
    ``numeric``, which the driver hands over as ``Decimal`` (slow to make and to add up in
    Python: about a tenth of a rollup answer's client time); cast back to ``bigint``. A sum past
    the 64-bit range then fails on both databases alike (SQLite: "integer overflow")."""

    type = BigInteger()
    name = "int_sum"
    inherit_cache = True


@compiles(int_sum)
def _int_sum(element: Any, compiler: Any, **kw: Any) -> str:
    return f"sum({compiler.process(element.clauses, **kw)})"


@compiles(int_sum, "postgresql")
def _int_sum_pg(element: Any, compiler: Any, **kw: Any) -> str:
    return f"CAST(sum({compiler.process(element.clauses, **kw)}) AS BIGINT)"


def in_ids(bind: Engine | Connection, column: Any, ids: Sequence[int]) -> Any:
    """``column IN (ids)`` for a list of integer ids the store read itself (slice ids).

    PostgreSQL: the ids are written into the statement when it runs (one cached compilation
    still). As parameters, the plan PostgreSQL keeps for a prepared statement (its generic plan,
    after five runs) builds ``ARRAY[$5, …, $166]`` again for every row and searches it from the
    start: a 0.5 ms cell read took 2.5 ms. Written in, the list is a constant the executor
    hashes once. SQLite: parameters, as before.
    """
    return column.in_(bindparam(None, list(ids), expanding=True, literal_execute=is_postgresql(bind)))


# -- read deadlines -----------------------------------------------------------------------------
_INSTALLED = "_hypermind_read_deadlines"
_CELL = "hypermind.read_deadline"
_PG_SET = "hypermind.pg_statement_timeout"
_PG_PENDING = "hypermind.pg_with_begin"
# PostgreSQL: a ``SET LOCAL statement_timeout`` is a server round trip of its own, as long as a
# small rollup read (a 24 h summary is two statements of 0.2 ms), unless it goes with the
# transaction's BEGIN (the first statement under a deadline sends both). A timeout set for this
# deadline in this transaction less than this long ago is kept: it lets a statement run past
# the deadline by at most this much (then the next statement sets it afresh).
_PG_RESET_AFTER_S = 0.05
# The SQLite progress handler runs every this many VM instructions (a few milliseconds of work).
# Rarely on purpose: each call takes the GIL, which SQLite otherwise runs without, and with a few
# request threads busy every call waits for it (at 4,000 instructions a 200-run page took 10 s).
_SQLITE_STEPS = 1_000_000


def install_read_deadlines(engine: Engine) -> None:
    """Make every statement on ``engine`` honour the open read deadline (idempotent)."""
    if getattr(engine, _INSTALLED, False):
        return
    setattr(engine, _INSTALLED, True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "before_cursor_execute", _sqlite_before)
        event.listen(engine, "checkin", _sqlite_checkin)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "before_cursor_execute", _pg_before)
        # SET LOCAL ends with its transaction: forget it then (and when the connection returns).
        for name in ("commit", "rollback"):
            event.listen(engine, name, _pg_forget_setting)
        event.listen(engine, "checkin", lambda dbapi_conn, record: _forget(record.info))
    event.listen(engine, "handle_error", _translate)


def _pg_forget_setting(conn: Connection) -> None:
    # A connection invalidated by a lost server has no DBAPI connection to ask (asking raises
    # PendingRollbackError, which turned the rollback of a 503 into a 500); its setting went with it.
    if not conn.invalidated:
        _forget(conn.connection.info)


def _forget(info: dict[str, Any]) -> None:
    info.pop(_PG_SET, None)
    info.pop(_PG_PENDING, None)


def with_begin(conn: Connection, statement: str) -> bool:
    """PostgreSQL: send ``statement`` (a ``SET LOCAL`` or ``SELECT set_config(…, true)`` for this
    transaction) in the round trip of the transaction's ``BEGIN``, if ``conn`` has not begun it
    and a read deadline is open (the deadline's first statement sends BEGIN and its timeout
    itself). Returns whether it will be sent so; otherwise the caller runs it. SQLite: False."""
    if conn.dialect.name != "postgresql" or deadline.current() is None:
        return False
    driver = conn.connection.driver_connection
    if driver.autocommit or driver.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:  # type: ignore[union-attr]
        return False
    conn.connection.info.setdefault(_PG_PENDING, []).append(statement.encode())
    return True


def is_read_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` (SQLAlchemy-wrapped or raw from the driver) is a statement cut by its deadline."""
    if isinstance(exc, deadline.ReadTimeout):
        return True
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlite3.OperationalError):
        return str(orig) == "interrupted"
    # QueryCanceled is SQLSTATE 57014; the message tells a timeout from a user's cancel.
    return isinstance(orig, psycopg.errors.QueryCanceled) and "statement timeout" in str(orig)


def _pg_before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    left = deadline.remaining_ms()
    if left is None:
        return
    info, d, now = conn.connection.info, deadline.current(), time.monotonic()
    # Kept only within the transaction that set it (psycopg: INTRANS; IDLE means this statement
    # starts a new one), for the same deadline, and for _PG_RESET_AFTER_S.
    kept = info.get(_PG_SET)
    if (
        kept is not None and kept[0] == d and now - kept[1] <= _PG_RESET_AFTER_S
        and cursor.connection.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    ):  # fmt: skip
        return
    # Transaction-scoped: it ends with the read's transaction, never leaks into a write.
    setting = b"SET LOCAL statement_timeout = %d" % int(left)
    driver = cursor.connection
    if driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE and not driver.autocommit:
        # The statement starts the transaction: begin it as psycopg would, with the setting in the
        # same round trip (psycopg then sees it begun and sends no BEGIN of its own).
        # So do the statements asked for with it (with_begin).
        extra = b"".join(b"; " + x for x in info.pop(_PG_PENDING, ()))
        res = driver.pgconn.exec_(_begin_command(driver) + b"; " + setting + extra)
        if res.status not in (psycopg.pq.ExecStatus.COMMAND_OK, psycopg.pq.ExecStatus.TUPLES_OK):
            raise psycopg.errors.error_from_result(res, encoding=driver.info.encoding)
    else:
        cursor.execute(setting)
    info[_PG_SET] = (d, now)


def _begin_command(driver: Any) -> bytes:
    """The ``BEGIN`` psycopg sends for ``driver``'s isolation level, read-only and deferrable
    attributes (psycopg's own rule, from its public attributes)."""
    parts = [b"BEGIN"]
    if driver.isolation_level is not None:
        level = psycopg.IsolationLevel(driver.isolation_level).name
        parts.append(b"ISOLATION LEVEL " + level.replace("_", " ").encode())
    if driver.read_only is not None:
        parts.append(b"READ ONLY" if driver.read_only else b"READ WRITE")
    if driver.deferrable is not None:
        parts.append(b"DEFERRABLE" if driver.deferrable else b"NOT DEFERRABLE")
    return b" ".join(parts)


def _sqlite_before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    d = deadline.current()
    info = conn.connection.info
    cell = info.get(_CELL)
    if cell is None:
        if d is None:
            return
        cell = info[_CELL] = [0.0]
        conn.connection.dbapi_connection.set_progress_handler(
            lambda: 1 if 0 < cell[0] < time.monotonic() else 0, _SQLITE_STEPS
        )
    deadline.remaining_ms()  # already past it: refuse before running
    # Armed until the next statement on this connection (fetching rows steps the VM after execute).
    cell[0] = d[0] if d is not None else 0.0


def _sqlite_checkin(dbapi_conn: Any, record: Any) -> None:
    cell = record.info.get(_CELL)
    if cell is not None:
        cell[0] = 0.0


def _translate(ctx: Any) -> None:
    d = deadline.current()
    if d is not None and is_read_timeout(ctx.original_exception):
        raise deadline.ReadTimeout(d[1]) from ctx.original_exception
