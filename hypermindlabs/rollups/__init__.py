"""Aggregation: rollups maintained with the events, and the metrics queries that read them.

- :mod:`~hypermindlabs.rollups.facts` (pure): what a finished run contributes, per cube.
- :mod:`~hypermindlabs.rollups.writer`: the append hook and the rebuild from raw events.
- :mod:`~hypermindlabs.rollups.query`: the metrics query and its plan (which cube per tier).
- the cells are summed by the store (:mod:`hypermindlabs.store.rollup_reads`) from the plan's
  :class:`~hypermindlabs.store.rollup_reads.CellQuery`.
- :mod:`~hypermindlabs.rollups.answers`: summary and timeseries answers from rollups only.
"""

from __future__ import annotations

from typing import Any

from hypermindlabs.rollups.facts import CUBES, TIERS, Cube
from hypermindlabs.rollups.writer import RollupHook, rebuild_in_chunks, rebuild_on

__all__ = ["CUBES", "TIERS", "Cube", "RollupHook", "rebuild_on", "rebuild_in_chunks", "rebuild_rollups"]


def rebuild_rollups(store: Any, *, progress: Any = None, runs_per_transaction: int = 2_000) -> int:
    """Recompute every rollup of an EventStore from its raw events.

    On SQLite in short transactions of ``runs_per_transaction`` runs (see ``rebuild_in_chunks``),
    so concurrent ingestion never waits past the busy timeout; on PostgreSQL in one transaction.
    """
    if store.engine.dialect.name == "sqlite":
        return rebuild_in_chunks(store.transaction, progress=progress, runs_per_transaction=runs_per_transaction)
    with store.transaction() as conn:
        return rebuild_on(conn, progress=progress)
