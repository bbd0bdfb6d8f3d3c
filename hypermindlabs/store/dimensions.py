"""The values each filter can take, from the rollup slices (the filter bar; ``GET /api/v1/dimensions``).

A slice row exists for every combination of dimension values ever stored, so the distinct values
come from a table whose size follows slices, not events. The list is "ever seen", not "seen in the
window": the filter bar offers every value, and an empty chart says there was nothing in the window.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from hypermindlabs.store.schema import rollup_slices

__all__ = ["dimension_values"]

DIMENSIONS: tuple[str, ...] = ("project", "model", "tool", "scenario")


def dimension_values(conn: Connection, *, limit: int = 500) -> dict[str, Any]:
    """``{"project": [...], "model": [...], "tool": [...], "scenario": [...], "tags": {key: [...]}}``, sorted.

    ``truncated`` lists the dimensions (or ``tag.<key>``) cut at ``limit`` values.
    """
    s = rollup_slices.c
    out: dict[str, Any] = {}
    truncated: list[str] = []
    for dim in ("project", "model", "scenario"):
        col = s[dim]
        vals = conn.execute(
            select(col).where(s.level == "run", s.cube == "core", col.is_not(None)).distinct().order_by(col)
            .limit(limit + 1)
        ).scalars().all()  # fmt: skip
        out[dim] = list(vals[:limit])
        if len(vals) > limit:
            truncated.append(dim)
    tools = conn.execute(
        select(s.tool).where(s.level == "step", s.cube == "core", s.tool.is_not(None)).distinct().order_by(s.tool)
        .limit(limit + 1)
    ).scalars().all()  # fmt: skip
    out["tool"] = list(tools[:limit])
    if len(tools) > limit:
        truncated.append("tool")
    tags: dict[str, list[str]] = {}
    rows = conn.execute(
        select(s.mkey, s.mvalue).where(s.level == "run", s.cube == "tag", s.mkey.like("tag.%")).distinct()
        .order_by(s.mkey, s.mvalue)
    ).all()  # fmt: skip
    for mkey, mvalue in rows:
        values = tags.setdefault(mkey[4:], [])
        if len(values) < limit:
            values.append(mvalue)
        elif f"tag.{mkey[4:]}" not in truncated:
            truncated.append(f"tag.{mkey[4:]}")
    out["tags"] = tags
    out["truncated"] = truncated
    return out
