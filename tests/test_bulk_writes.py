"""The store's bulk statements (store.dialect): the same rows in and out on both databases.

PostgreSQL streams rows with binary COPY, straight into the table or through a per-session staging
table that one INSERT/UPDATE empties; SQLite runs executemany. Whatever the path, the stored
rows must be exactly the rows given, conflicts resolved as asked, and nothing left behind for the
next statement or transaction.
"""

from __future__ import annotations

import pytest
from sqlalchemy import BigInteger, Boolean, Column, LargeBinary, MetaData, SmallInteger, String, Table, Text, select
from sqlalchemy.exc import IntegrityError

from hypermindlabs.store.dialect import bulk_update, bulk_write, insert_new, rows_by_keys

_meta = MetaData()
things = Table(
    "bulk_things",
    _meta,
    Column("part", SmallInteger, primary_key=True, autoincrement=False),
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String(64)),
    Column("body", Text),
    Column("flag", Boolean),
    Column("n", BigInteger, nullable=False),
    Column("blob", LargeBinary),
)
COLS = ("part", "id", "name", "body", "flag", "n", "blob")
# Text COPY would have to escape these; binary COPY must carry them as they are.
AWKWARD = ["tab\there", "new\nline", "back\\slash", 'quote"s', "comma,s", "{braces}", "", "ünïcødé ✓", "\\N", "NULL"]


@pytest.fixture
def engine(make_pipeline):
    eng = make_pipeline().store.engine
    _meta.create_all(eng)
    yield eng
    _meta.drop_all(eng)


def _rows(n: int, part: int = 1, base: int = 0) -> list[tuple]:
    return [
        (part, base + i, AWKWARD[i % len(AWKWARD)], None if i % 3 == 0 else f"body {i}\r\n\x01",
         None if i % 4 == 0 else bool(i % 2), (-1) ** i * (2**62 + i), None if i % 5 == 0 else bytes([0, i % 256, 255]))
        for i in range(n)
    ]  # fmt: skip


def _stored(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(things).order_by(things.c.part, things.c.id))]


def test_rows_go_in_and_come_back_exactly(engine) -> None:
    rows = _rows(2_500)
    with engine.begin() as conn:
        bulk_write(conn, things, COLS, rows)
    assert _stored(engine) == sorted(rows)


def test_a_plain_insert_that_hits_a_key_is_an_integrity_error_and_stores_nothing(engine) -> None:
    with engine.begin() as conn:
        bulk_write(conn, things, COLS, _rows(10))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        bulk_write(conn, things, COLS, _rows(20, base=100))
        bulk_write(conn, things, COLS, _rows(20, base=5))  # ids 5..24: 5..9 exist
    assert _stored(engine) == sorted(_rows(10))


def test_conflicts_ignore_replace_and_add_as_asked(engine) -> None:
    first = _rows(50)
    with engine.begin() as conn:
        bulk_write(conn, things, COLS, first)
    again = [(p, i, "new", b, f, 7, x) for p, i, _, b, f, _, x in _rows(80)]  # ids 0..79
    with engine.begin() as conn:
        bulk_write(conn, things, COLS, again, conflict="ignore", keys=("part", "id"))
    assert _stored(engine) == sorted(first + again[50:])
    with engine.begin() as conn:
        bulk_write(conn, things, COLS, again[:10], conflict="replace", keys=("part", "id"))
    assert _stored(engine)[:10] == sorted(again[:10])
    with engine.begin() as conn:
        bulk_write(conn, things, ("part", "id", "n"), [(1, 60, 5), (1, 200, 9)], conflict="add", keys=("part", "id"),
                   add=("n",))  # fmt: skip
    got = {r[1]: r[5] for r in _stored(engine)}
    assert got[60] == 7 + 5 and got[200] == 9


def test_insert_new_names_the_rows_it_skipped(engine) -> None:
    with engine.begin() as conn:
        bulk_write(conn, things, COLS, _rows(30))
    with engine.begin() as conn:
        skipped = insert_new(conn, things, COLS, _rows(40, base=20), "id")  # ids 20..59: 20..29 exist
    if engine.dialect.name == "postgresql":
        assert skipped == set(range(20, 30))
    else:  # SQLite's executemany tells only that some were skipped
        assert skipped is None
    assert [r[1] for r in _stored(engine)] == list(range(60))


def test_bulk_update_changes_exactly_the_rows_named(engine) -> None:
    rows = _rows(100)
    with engine.begin() as conn:
        bulk_write(conn, things, COLS, rows)
    changes = [(1, i, f"upd {i}\t\\", None, True, i, b"\x00\x01") for i in range(0, 100, 7)]
    with engine.begin() as conn:
        bulk_update(conn, things, ("part", "id"), COLS[2:], changes)
        bulk_update(conn, things, ("part", "id"), COLS[2:], [(1, 10_000, "absent", None, None, 0, None)])
    want = {r[1]: r for r in rows} | {c[1]: c for c in changes}
    assert _stored(engine) == sorted(want.values())


def test_the_same_shape_twice_in_one_transaction_and_after_a_rollback(engine) -> None:
    # One staging table per session and shape: each statement must see only its own rows.
    with engine.begin() as conn:
        bulk_write(conn, things, COLS, _rows(40), conflict="ignore", keys=("part", "id"))
        bulk_write(conn, things, COLS, _rows(40, part=2), conflict="ignore", keys=("part", "id"))
        got = rows_by_keys(conn, things, ("part", "id"), [(2, 3), (1, 39), (3, 0)], ("part", "id", "name"))
    assert sorted(got) == [(1, 39, AWKWARD[39 % len(AWKWARD)]), (2, 3, AWKWARD[3])]
    with pytest.raises(RuntimeError), engine.begin() as conn:
        bulk_write(conn, things, COLS, _rows(40, part=3), conflict="ignore", keys=("part", "id"))
        raise RuntimeError("rolled back after the write")
    for _ in range(2):  # the pool hands back the same sessions: nothing staged may linger
        with engine.begin() as conn:
            bulk_write(conn, things, COLS, _rows(5, part=4), conflict="ignore", keys=("part", "id"))
    assert sorted({r[0] for r in _stored(engine)}) == [1, 2, 4]
    assert len(_stored(engine)) == 40 + 40 + 5


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # SQLite has no JIT, no staging table
def test_staged_statements_run_without_jit_on_postgresql(engine) -> None:
    # Under keyed_reads_only (enable_seqscan = off) a staging table's scan is priced at 10^10, so
    # every staged statement passed jit_above_cost: 85–135 ms of JIT compiling per events insert.
    from hypermindlabs.store.dialect import keyed_reads_only

    with engine.begin() as conn:
        keyed_reads_only(conn)
        bulk_write(conn, things, COLS, _rows(10), conflict="ignore", keys=("part", "id"))
        assert conn.exec_driver_sql("SELECT current_setting('jit')").scalar_one() == "off"
