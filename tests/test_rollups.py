"""Rollups: maintained in the append transaction, always equal to a rebuild from raw events.

Also home of the synthetic dataset (runs with known answers) that test_metrics_api uses.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypermindlabs.core.events import chars_to_tokens
from hypermindlabs.ingest import ingest_objects
from hypermindlabs.rollups import RollupHook, rebuild_on, rebuild_rollups
from hypermindlabs.store import EventStore
from hypermindlabs.store.schema import events, rollup_cells, rollup_slice_members, rollup_slices, run_tags
from tests.conftest import FIXED_NOW_NS

MS = 1_000_000
S = 1_000 * MS
MIN = 60 * S
HOUR = 60 * MIN
DAY = 24 * HOUR


# -- the synthetic dataset ----------------------------------------------------------------------
@dataclass
class Step:
    kind: str
    start_ns: int
    dur_ns: int
    status: str = "ok"
    tool: str | None = None
    model: str | None = None
    usage: dict[str, int] | None = None
    error_class: str | None = None
    own_dims: bool = False  # sends project/scenario itself instead of inheriting them


@dataclass
class Run:
    run_id: str
    start_ns: int
    dur_ns: int
    status: str
    project: str | None
    scenario: str | None
    model: str | None
    tags: dict[str, str]
    usage: dict[str, int] | None
    error_class: str | None
    steps: list[Step] = field(default_factory=list)

    @property
    def failure_class(self) -> str | None:
        """What the test enricher stores: the asserted class, else "unknown" for failures."""
        return self.error_class or ("unknown" if self.status == "error" else None)

    @property
    def tools(self) -> set[str]:
        return {s.tool for s in self.steps if s.tool is not None}

    @property
    def dur_ms(self) -> float:
        return self.dur_ns / 1e6

    def tokens(self) -> tuple[int, int, int, int]:
        """(input, output, input proxy, output proxy): the run's usage, else its LLM steps'."""
        if self.usage is not None:
            return usage_tokens(self.usage)
        total = [0, 0, 0, 0]
        for s in self.steps:
            if s.kind == "llm" and s.usage is not None:
                total = [a + b for a, b in zip(total, usage_tokens(s.usage), strict=True)]
        return tuple(total)  # type: ignore[return-value]

    def step_dims(self, s: Step) -> dict[str, Any]:
        """A step's dimensions after inheritance from its run."""
        return {
            "kind": s.kind,
            "project": "own-project" if s.own_dims else self.project,
            "scenario": self.scenario,
            "model": s.model or self.model,
            "tool": s.tool,
        }


def downgrade_schema(store: EventStore, revision: str) -> None:
    """Take ``store``'s schema back to ``revision`` with Alembic (the events stay; the tables of later
    revisions go): the layout of a database from before a migration."""
    _alembic(store, "downgrade", revision)


def upgrade_schema(store: EventStore, revision: str) -> None:
    """Apply the migrations up to ``revision`` only (what a release of that revision did at start-up,
    before the composition root's recompute of derived data)."""
    _alembic(store, "upgrade", revision)


def _alembic(store: EventStore, direction: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from hypermindlabs.store.event_store import _MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, direction)(cfg, revision)


def usage_tokens(usage: dict[str, int]) -> tuple[int, int, int, int]:
    if "input_tokens" in usage:
        return usage["input_tokens"], usage["output_tokens"], 0, 0
    return 0, 0, chars_to_tokens(usage["input_chars"]), chars_to_tokens(usage["output_chars"])


def enrich(event: Any) -> dict[str, Any]:
    """Stands in for triage (known answers): the class a client asserted, else unknown for failures.

    Takes the stored row (a dict) or the parsed event, whichever the store's enricher receives.
    """
    get = event.get if isinstance(event, dict) else lambda k: getattr(event, k)
    return {"failure_class": get("error_class") or ("unknown" if get("status") == "error" else None)}


PROJECTS = ("alpha", "beta", "gamma", None)
SCENARIOS = ("checkout", "refund", "search")
MODELS = ("m-large", "m-small")
TOOLS = ("search", "fetch", "crm")
CLASSES = ("rate_limit", "tool_timeout", None)


def build_runs(seed: int, n: int, t0_ns: int, span_ns: int, *, prefix: str = "r") -> list[Run]:
    """``n`` runs starting in [t0, t0 + span), a few exactly on minute/quarter/hour/day edges."""
    rng = random.Random(seed)
    runs = []
    for i in range(n):
        if i % 17 == 0:  # on a bucket edge: counted once, in the bucket that starts there
            start = t0_ns + rng.randrange(span_ns // HOUR) * HOUR
        elif i % 19 == 0:
            start = t0_ns + rng.randrange(span_ns // MIN) * MIN
        else:
            start = t0_ns + rng.randrange(span_ns // MS) * MS
        status = "error" if rng.random() < 0.25 else "ok"
        model = rng.choice(MODELS)
        tags = {}
        if rng.random() < 0.85:
            tags["env"] = rng.choice(("prod", "staging"))
        if rng.random() < 0.7:
            tags["tier"] = rng.choice(("free", "pro", "enterprise"))
        t = start + rng.randrange(1, 50) * MS
        steps = []
        for _ in range(rng.randrange(0, 4)):
            dur = int(math.exp(rng.gauss(math.log(300), 0.8)) * MS)
            failed = rng.random() < 0.15
            steps.append(Step("tool", t, dur, "error" if failed else "ok", tool=rng.choice(TOOLS),
                              error_class=rng.choice(("tool_timeout", None)) if failed else None,
                              own_dims=rng.random() < 0.05))  # fmt: skip
            t += dur
        for _ in range(rng.randrange(1, 3)):
            dur = int(math.exp(rng.gauss(math.log(900), 0.6)) * MS)
            if rng.random() < 0.3:
                usage = {"input_chars": rng.randrange(100, 9000), "output_chars": rng.randrange(10, 2000)}
            else:
                usage = {"input_tokens": rng.randrange(50, 3000), "output_tokens": rng.randrange(5, 600)}
            steps.append(Step("llm", t, dur, model=model if rng.random() < 0.5 else None, usage=usage))
            t += dur
        if rng.random() < 0.3:
            steps.append(Step("retrieval", t, 40 * MS, tool="kb"))
            t += 40 * MS
        run_usage = None
        if rng.random() < 0.5:
            run_usage = {"input_tokens": rng.randrange(100, 5000), "output_tokens": rng.randrange(10, 900)}
        runs.append(Run(
            run_id=f"{prefix}{i:04d}", start_ns=start, dur_ns=t - start + rng.randrange(0, 3000) * MS,
            status=status, project=PROJECTS[i % len(PROJECTS)] if i % 23 else None,
            scenario=rng.choice(SCENARIOS), model=model, tags=tags, usage=run_usage,
            error_class=rng.choice(CLASSES) if status == "error" else None, steps=steps,
        ))  # fmt: skip
    return runs


def _ts(ns: int, form: int) -> Any:
    """One instant in one of the contract's timestamp forms (RFC 3339, epoch s/ms/µs/ns)."""
    if form == 0:
        secs, frac = divmod(ns, S)
        return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"
    if form == 1:
        return ns // MS / 1e3  # epoch seconds as a float, exact to the millisecond
    return {2: ns // MS, 3: ns // 1000, 4: ns}[form]


# The smallest unit each form carries exactly; an instant finer than that is sent in ns.
_EXACT_TO = {0: 1, 1: MS, 2: MS, 3: 1000, 4: 1, 5: 1000}


def _times(obj: dict[str, Any], start: int, dur: int, form: int) -> None:
    if start % _EXACT_TO[form] or dur % _EXACT_TO[form]:
        form = 4
    if form == 5:
        obj["start_time"] = _ts(start, 0)
        obj["duration_ms"] = dur / 1e6
        return
    obj["start_time"] = _ts(start, form)
    obj["end_time"] = _ts(start + dur, form)


def to_events(runs: Iterable[Run], *, seed: int = 0) -> list[dict[str, Any]]:
    """Contract events: each run's children, then its run event; timestamp forms mixed."""
    rng = random.Random(seed)
    out = []
    for r in runs:
        for j, s in enumerate(r.steps):
            ev: dict[str, Any] = {"event_id": f"{r.run_id}-s{j}", "run_id": r.run_id, "kind": s.kind,
                                  "status": s.status}  # fmt: skip
            if s.tool:
                ev["tool"] = s.tool
            if s.model:
                ev["model"] = s.model
            if s.usage:
                ev["usage"] = s.usage
            if s.own_dims:
                ev["project"] = "own-project"
            if s.status == "error":
                ev["error"] = {"type": "StepError", "message": "boom"} | (
                    {"class": s.error_class} if s.error_class else {}
                )
            _times(ev, s.start_ns, s.dur_ns, rng.randrange(6))
            out.append(ev)
        ev = {"event_id": f"{r.run_id}-run", "run_id": r.run_id, "kind": "run", "status": r.status,
              "tags": r.tags}  # fmt: skip
        for k in ("project", "scenario", "model"):
            if getattr(r, k) is not None:
                ev[k] = getattr(r, k)
        if r.usage:
            ev["usage"] = r.usage
        if r.status == "error":
            ev["error"] = {"type": "RunError", "message": "failed"} | (
                {"class": r.error_class} if r.error_class else {}
            )
        _times(ev, r.start_ns, r.dur_ns, rng.randrange(6))
        out.append(ev)
    return out


def ingest(store: EventStore, evs: list[dict[str, Any]], batch: int = 500) -> None:
    for i in range(0, len(evs), batch):
        result = ingest_objects(store, evs[i : i + batch])
        assert not result.rejected, result.rejected[:3]


# -- comparing rollups --------------------------------------------------------------------------
def snapshot(store: EventStore) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Cells, and the slices and members they use, as sorted plain tuples."""
    with store.engine.connect() as c:
        cells = sorted(tuple(r) for r in c.execute(sa.select(rollup_cells)))
        used = {r[0] for r in cells}
        slices = sorted(tuple(r) for r in c.execute(sa.select(rollup_slices)) if r[0] in used)
        members = sorted(tuple(r) for r in c.execute(sa.select(rollup_slice_members)) if r[0] in used)
    return cells, slices, members


def rebuild_from_scratch(store: EventStore) -> None:
    """Rebuild with the slice dictionary emptied too: everything recomputed from raw events."""
    with store.engine.begin() as c:
        c.execute(sa.delete(rollup_slice_members))
        c.execute(sa.delete(rollup_slices))
        rebuild_on(c)
    _forget_slices(store)


def _forget_slices(store: EventStore) -> None:
    for hook in store.append_hooks:
        if isinstance(hook, RollupHook):
            hook.known_slices.clear()


def wipe(store: EventStore) -> None:
    with store.engine.begin() as c:
        for t in (rollup_cells, rollup_slice_members, rollup_slices, run_tags, events):
            c.execute(sa.delete(t))
    _forget_slices(store)


def run_count(store: EventStore) -> int:
    """Runs counted by the rollups (the run-level total cube, all tiers agree)."""
    with store.engine.connect() as c:
        q = (
            sa.select(rollup_cells.c.tier, sa.func.sum(rollup_cells.c.n))
            .select_from(
                rollup_cells.join(rollup_slices, rollup_slices.c.slice_id == rollup_cells.c.slice_id)
            )
            .where(rollup_slices.c.level == "run", rollup_slices.c.cube == "full")
            .group_by(rollup_cells.c.tier)
        )
        return sum(int(n) for _, n in c.execute(q))


T0 = FIXED_NOW_NS - 3 * DAY


@pytest.fixture
def enriched(make_store) -> EventStore:
    return make_store(enricher=enrich)


# -- tests --------------------------------------------------------------------------------------
def test_incremental_rollups_equal_a_rebuild_from_raw_events(enriched: EventStore) -> None:
    runs = build_runs(1, 120, T0, 2 * DAY)
    evs = to_events(runs, seed=1)
    random.Random(2).shuffle(evs)  # children before and after their runs, across batches
    ingest(enriched, evs, batch=97)
    incremental = snapshot(enriched)
    assert run_count(enriched) == len(runs)
    rebuild_from_scratch(enriched)
    assert snapshot(enriched) == incremental


def test_the_rebuild_command_recomputes_the_same_rollups(enriched: EventStore, capsys) -> None:
    from hypermindlabs.cli import main

    ingest(enriched, to_events(build_runs(3, 40, T0, DAY)))
    before = snapshot(enriched)
    url = enriched.engine.url.render_as_string(hide_password=False)
    assert main(["rebuild-rollups", "--database-url", url, "-q"]) == 0
    assert "rebuilt the rollups of 40 runs" in capsys.readouterr().out
    assert snapshot(enriched) == before


def test_the_migration_fills_rollups_for_events_stored_before_it(backend, make_store) -> None:
    # The events are stored by today's ingest path (it reads tables of later revisions, such as
    # the retention watermark), then the schema is taken back to 0002: the events stay, the
    # rollup tables and everything after them go.
    store = make_store(rollups=False, enricher=enrich)
    ingest(store, to_events(build_runs(4, 30, T0, DAY)))
    downgrade_schema(store, "0002")
    assert store.schema_version() == "0002"
    # Start-up of the upgraded product: the composition root migrates past 0003 (which creates the
    # rollup tables) and fills them from the events already stored.
    store = make_store(enricher=enrich)
    assert store.schema_version() == store.head_version()
    assert run_count(store) == 30
    filled = snapshot(store)
    rebuild_from_scratch(store)
    assert snapshot(store) == filled


def test_children_stored_before_their_run_count_with_its_dimensions_once_it_arrives(
    enriched: EventStore,
) -> None:
    [run] = build_runs(5, 1, T0, HOUR)
    run.steps = [
        Step("tool", run.start_ns + MS, 5 * MS, tool="search"),
        Step("llm", run.start_ns + 9 * MS, 7 * MS),
    ]
    evs = to_events([run])
    ingest(enriched, evs[:-1])  # the children: no run yet, nothing counted
    assert snapshot(enriched)[0] == []
    ingest(enriched, evs[-1:])
    with enriched.engine.connect() as c:
        q = sa.select(rollup_slices.c.kind, rollup_slices.c.project, rollup_slices.c.scenario).where(
            rollup_slices.c.level == "step", rollup_slices.c.cube.in_(("core", "full"))  # those keeping them
        )
        steps = set(c.execute(q).all())
    assert steps == {("tool", run.project, run.scenario), ("llm", run.project, run.scenario)}
    before = snapshot(enriched)
    rebuild_from_scratch(enriched)
    assert snapshot(enriched) == before


def test_a_late_child_on_a_new_tool_moves_its_run_into_that_tools_slices(enriched: EventStore) -> None:
    [run] = build_runs(6, 1, T0, HOUR)
    run.steps = [Step("tool", run.start_ns + MS, 5 * MS, tool="search")]
    ingest(enriched, to_events([run]))
    late = Step("tool", run.start_ns + 20 * MS, 5 * MS, tool="crm")
    ingest(enriched, [to_events([Run(**{**run.__dict__, "steps": [late]})])[0] | {"event_id": "late-1"}])
    with enriched.engine.connect() as c:
        members = set(
            c.execute(
                sa.select(rollup_slice_members.c.value).where(rollup_slice_members.c.key == "tool")
            ).scalars()
        )
        tool_calls = c.execute(
            sa.select(sa.func.sum(rollup_cells.c.tool_calls))
            .select_from(
                rollup_cells.join(rollup_slices, rollup_slices.c.slice_id == rollup_cells.c.slice_id)
            )
            .where(
                rollup_slices.c.level == "run", rollup_slices.c.cube == "total", rollup_cells.c.tier == 86400
            )
        ).scalar_one()
    assert {"search", "crm"} <= members
    assert tool_calls == 2
    assert run_count(enriched) == 1
    before = snapshot(enriched)
    rebuild_from_scratch(enriched)
    assert snapshot(enriched) == before


def test_resent_batches_never_double_count(enriched: EventStore) -> None:
    evs = to_events(build_runs(7, 25, T0, DAY))
    ingest(enriched, evs)
    once = snapshot(enriched)
    ingest(enriched, evs)
    ingest(enriched, list(reversed(evs)), batch=7)
    assert snapshot(enriched) == once


def test_children_whose_run_never_arrives_are_not_counted(enriched: EventStore) -> None:
    [run] = build_runs(8, 1, T0, HOUR)
    run.steps = [Step("tool", run.start_ns + MS, 5 * MS, tool="search")]
    ingest(enriched, to_events([run])[:-1])
    assert snapshot(enriched) == ([], [], [])


def test_concurrent_writers_keep_rollups_equal_to_a_rebuild(store: EventStore) -> None:
    enriched = store  # the default store: failure triage classifies at ingest
    evs = to_events(build_runs(9, 80, T0, DAY), seed=9)
    random.Random(9).shuffle(evs)
    parts = [evs[i::4] for i in range(4)]  # a run and its children usually land in different writers

    def writer(part: list[dict[str, Any]]) -> None:
        for i in range(0, len(part), 13):
            ingest_objects(enriched, part[i : i + 13])

    threads = [threading.Thread(target=writer, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert run_count(enriched) == 80
    concurrent = snapshot(enriched)
    rebuild_from_scratch(enriched)
    assert snapshot(enriched) == concurrent


def test_rebuild_reports_progress_in_runs(enriched: EventStore) -> None:
    ingest(enriched, to_events(build_runs(10, 12, T0, DAY)))
    seen: list[tuple[int, int]] = []
    assert rebuild_rollups(enriched, progress=lambda done, total: seen.append((done, total))) == 12
    assert seen[0] == (0, 12) and seen[-1] == (12, 12)


# -- property: any batches, any order, duplicates → incremental == rebuilt ------------------------
@st.composite
def _workloads(draw: st.DrawFn) -> tuple[list[Run], list[list[dict[str, Any]]]]:
    seed = draw(st.integers(0, 10_000))
    n = draw(st.integers(1, 6))
    runs = build_runs(seed, n, T0, draw(st.sampled_from([HOUR, DAY, 2 * DAY])), prefix=f"p{seed}-")
    evs = to_events(runs, seed=seed)
    order = draw(st.permutations(range(len(evs))))
    evs = [evs[i] for i in order]
    dupes = draw(st.lists(st.integers(0, len(evs) - 1), max_size=5))
    evs += [evs[i] for i in dupes]
    cuts = sorted(draw(st.lists(st.integers(1, max(1, len(evs) - 1)), max_size=5)))
    batches = [evs[a:b] for a, b in zip([0, *cuts], [*cuts, len(evs)], strict=True) if evs[a:b]]
    return runs, batches


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(workload=_workloads())
def test_property_rollups_rebuilt_from_raw_events_equal_the_incremental_ones(
    store: EventStore, workload
) -> None:
    runs, batches = workload
    enriched = store  # the default store: failure triage classifies (and re-classifies) at ingest
    wipe(enriched)
    for b in batches:
        ingest_objects(enriched, b)
    incremental = snapshot(enriched)
    assert run_count(enriched) == len(runs)
    rebuild_from_scratch(enriched)
    assert snapshot(enriched) == incremental
