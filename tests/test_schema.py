"""The tables the code queries (store/schema.py) are exactly what the Alembic migrations build.

Compared with Alembic's autogenerate on a database migrated to head, on SQLite and PostgreSQL:
columns, types, nullability, keys and indexes. A schema edit without its migration (or the
reverse) fails here.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, MetaData, String

from hypermindlabs.store.schema import metadata


def _diff(engine, target: MetaData) -> list:
    dialect = engine.dialect.name

    def declared_here(obj, name, type_, reflected, compare_to) -> bool:  # noqa: ANN001
        # An index declared for another dialect only (``Index.ddl_if``) is not expected here.
        # (looked up in the declared schema: Table.to_metadata does not copy it)
        declared = {i.name: i for i in metadata.tables[obj.table.name].indexes} if type_ == "index" else {}
        cond = getattr(declared.get(name), "_ddl_if", None) if not reflected else None
        return cond is None or cond.dialect is None or dialect in (
            (cond.dialect,) if isinstance(cond.dialect, str) else tuple(cond.dialect)
        )

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": declared_here})
        return compare_metadata(context, target)


def test_the_declared_schema_equals_what_the_migrations_build(store):
    assert store.schema_version() == store.head_version()
    assert _diff(store.engine, metadata) == []


def test_the_comparison_sees_a_column_the_migrations_do_not_make(store):
    # The check above can fail: a declared column missing from the migrations is reported.
    drifted = MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["events"].append_column(Column("not_migrated", String(8)))
    diff = _diff(store.engine, drifted)
    assert [d[0] for d in diff] == ["add_column"] and diff[0][3].name == "not_migrated"
