"""The runs an append batch touches, gathered once for every derived view (rollups, exported series).

Both append hooks need the same thing: the batch's new events grouped by run, and for the runs
whose other events were stored by earlier batches, those events (a run event arriving after its
steps, or late steps of a stored run). :func:`touched_runs` reads them with one count query and one
fetch (only for runs that have earlier events), and the second hook of the same transaction gets
the same answer without touching the database again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from hypermindlabs.core.vocabulary import chunks
from hypermindlabs.store import export_series, rollup_cells
from hypermindlabs.store.schema import events
from hypermindlabs.store.tag_sets import event_column

__all__ = ["RunChange", "touched_runs", "forget", "FIELDS"]

#: The event columns the derived views compute from (the rollups' and the exported series').
FIELDS: tuple[str, ...] = tuple(dict.fromkeys(rollup_cells.EVENT_FIELDS + export_series.EXPORT_FIELDS))
_COLUMNS = [event_column(events, k) for k in FIELDS]
_MEMO = "hypermind.touched_runs"


@dataclass(frozen=True, slots=True)
class RunChange:
    """One run of the batch: its run event (None while not stored yet), whether that run event is
    new in this batch, its children stored before and its children new in this batch."""

    run_id: str
    run: Mapping[str, Any] | None
    run_is_new: bool
    prev_children: list[Mapping[str, Any]]
    new_children: list[Mapping[str, Any]]


def touched_runs(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[RunChange]:
    """The runs of ``rows`` (a batch just inserted on ``conn``) in first-seen order.

    Call under the writers' lock (the hooks hold it). The answer is kept on the connection for the
    same ``rows`` object, so every hook of one append shares one read.
    """
    memo = conn.info.get(_MEMO)
    if memo is not None and memo[0] is rows:
        return memo[1]
    by_run: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_run.setdefault(r["run_id"], []).append(r)
    stored = rollup_cells.stored_counts(conn, list(by_run))
    # Earlier events matter for a run whose run event is new (its children) or stored (late
    # children change the run's fact); a run with neither is counted when its run event arrives.
    need = [
        rid for rid, new in by_run.items()
        if stored.get(rid, (0, False))[0] > len(new) and (stored[rid][1] or any(e["kind"] == "run" for e in new))
    ]  # fmt: skip
    earlier = _fetch(conn, need, {r["event_id"] for r in rows}) if need else {}
    out: list[RunChange] = []
    for rid, new in by_run.items():
        prev = earlier.get(rid, [])
        run_new = next((e for e in new if e["kind"] == "run"), None)
        run = run_new or next((e for e in prev if e["kind"] == "run"), None)
        out.append(RunChange(
            rid, run, run_new is not None, [e for e in prev if e["kind"] != "run"],
            [e for e in new if e["kind"] != "run"],
        ))  # fmt: skip
    conn.info[_MEMO] = (rows, out)
    return out


def forget(conn: Connection) -> None:
    """Drop the kept answer (the store calls it when its append hooks are done)."""
    conn.info.pop(_MEMO, None)


def _fetch(conn: Connection, run_ids: list[str], exclude: set[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    cols = _COLUMNS
    for chunk in chunks(run_ids):
        for row in conn.execute(select(*cols).where(events.c.run_id.in_(chunk))):
            m = row._mapping
            if m["event_id"] not in exclude:
                out.setdefault(m["run_id"], []).append(dict(m))
    return out
