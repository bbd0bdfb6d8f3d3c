"""A fresh, empty store for one bench measurement: a new SQLite file or a new PostgreSQL schema.

    url, drop = fresh_url("postgresql", tmp, pg, prefix="load")
    ...                       # build_pipeline(Settings(database_url=url)) migrates it
    drop()                    # DROP SCHEMA … CASCADE (nothing for SQLite: the temp dir goes)

Imported by the bench scripts as ``from databases import fresh_url`` (the script's folder is on
``sys.path`` when it runs).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path


def fresh_url(kind: str, tmp: Path, pg: str | None, *, prefix: str = "bench") -> tuple[str, Callable[[], None]]:
    """(database URL, drop) for a new store of ``kind`` (``sqlite`` or ``postgresql``)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / (uuid.uuid4().hex + '.db')}", lambda: None
    if not pg:
        raise SystemExit("a PostgreSQL URL is needed for kind=postgresql (--postgres)")
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with psycopg.connect(pg, autocommit=True) as c:
            c.execute(f'DROP SCHEMA "{schema}" CASCADE')

    sep = "&" if "?" in pg else "?"
    return f"{pg}{sep}options=-csearch_path%3D{schema}", drop
