"""PostgreSQL bulk writes: one statement per batch instead of one per row.

psycopg's ``executemany`` sends one statement per row (pipelined), which costs a server round of
parse/execute per row; sending each column as one array and ``unnest``-ing them server-side
writes a whole batch in one statement. ``unnest`` keeps the rows' order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import Table
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection


def conflict_clause(compiled_sql: str) -> str:
    """The ``ON CONFLICT …`` tail of a compiled INSERT (empty when it has none)."""
    at = compiled_sql.find(" ON CONFLICT ")
    if at < 0:
        return ""
    tail = compiled_sql[at:]
    ret = tail.find(" RETURNING ")
    return tail if ret < 0 else tail[:ret]


def unnest_insert(
    conn: Connection, table: Table, cols: Sequence[str], rows: Sequence[Sequence[Any]], conflict: str = ""
) -> None:
    """INSERT ``rows`` (tuples in ``cols`` order) into ``table`` in one statement.

    With ``ON CONFLICT … DO UPDATE``, keys must be unique within ``rows`` (PostgreSQL refuses to
    update one row twice in one statement).
    """
    if not rows:
        return
    compile_type = conn.dialect.type_compiler_instance.process
    arrays = ", ".join(f"%s::{compile_type(table.c[c].type)}[]" for c in cols)
    stmt = f"INSERT INTO {table.name} ({', '.join(cols)}) SELECT * FROM unnest({arrays}){conflict}"
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(stmt, [list(col) for col in zip(*rows, strict=True)])
    except psycopg.IntegrityError as exc:
        # Raised the way SQLAlchemy would, so the store's retry on a concurrent writer applies.
        raise sa_exc.IntegrityError(stmt, None, exc) from exc
    finally:
        cursor.close()
