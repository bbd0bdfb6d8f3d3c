"""The alerts Alertmanager delivered to ``POST /api/v1/alerts``: one row per fingerprint, its latest state.

Every statement about the ``alerts`` table (migration 0005) lives here. A notification is stored
in one transaction. Alertmanager may deliver an older notification after a newer one (retries):
a firing notification never overwrites the resolved state of the same firing (same ``startsAt``);
a new firing of that alert has a later ``startsAt`` and does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import and_, not_, select
from sqlalchemy.engine import Engine

from hypermindlabs.core.alerts import AlertRecord
from hypermindlabs.store.dialect import insert_for
from hypermindlabs.store.schema import alerts

__all__ = ["AlertStore", "alerts"]


class AlertStore:
    """Reads and writes of the ``alerts`` table on the event store's engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def upsert(self, records: Sequence[AlertRecord], *, received_at_ns: int) -> int:
        if not records:
            return 0
        rows = [
            {
                "fingerprint": r.fingerprint, "status": r.status, "alertname": r.alertname, "severity": r.severity,
                "labels": orjson.dumps(r.labels).decode(), "annotations": orjson.dumps(r.annotations).decode(),
                "starts_at_ns": r.starts_at_ns, "ends_at_ns": r.ends_at_ns, "generator_url": r.generator_url,
                "receiver": r.receiver, "received_at_ns": received_at_ns,
            }
            for r in records
        ]  # fmt: skip
        stmt = insert_for(self.engine, alerts)
        new = stmt.excluded
        stale = and_(alerts.c.status == "resolved", new.status == "firing", new.starts_at_ns == alerts.c.starts_at_ns)
        stmt = stmt.on_conflict_do_update(
            index_elements=[alerts.c.fingerprint],
            set_={k: new[k] for k in rows[0] if k != "fingerprint"},
            where=not_(stale),
        )
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)
        return len(rows)

    def list(self, state: str = "firing", *, limit: int = 500) -> list[dict[str, Any]]:
        """Alerts in ``state`` (firing, resolved or all), most recently started first."""
        q = select(alerts)
        if state != "all":
            q = q.where(alerts.c.status == state)
        q = q.order_by(alerts.c.starts_at_ns.desc(), alerts.c.fingerprint).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [dict(r) for r in rows]
