"""Synthetic per-run data with known truth, aggregated the way the rollups aggregate it.

Each run has a (project, scenario, model) group, a set of tools it used, an outcome and failure
class, a latency, tokens and tool calls, drawn from per-group distributions that are the same in
both windows unless a regression is injected. The runs are then summed into the cells of a core
read (project, scenario, model) and a tool read (… + tool), as :class:`Source` inputs of
:func:`hypermindlabs.regressions.analyze`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hypermindlabs.core.sketch import bin_of
from hypermindlabs.regressions import SliceStats, Source

PROJECTS = ("shop", "sales")
SCENARIOS = ("refund", "order_status", "triage", "faq", "lead", "meeting", "enrich", "report")
MODELS = ("m-large", "m-mini", "m-fast", "m-open", "m-alt")
TOOLS = ("search", "crm", "orders", "email", "sql", "calendar", "refunds", "fetch")
CLASSES = ("tool_timeout", "rate_limit", "tool_schema_mismatch")


@dataclass
class Injection:
    """What changes in the current window (nothing by default)."""

    fail_group: tuple[str, str] | None = None  # (scenario, model): failure rate becomes fail_rate
    fail_rate: float = 0.0
    fail_class: str = "tool_schema_mismatch"
    slow_tool: str | None = None  # runs using it: latency × slow_factor
    slow_factor: float = 1.0
    extra: dict = field(default_factory=dict)


@dataclass
class Runs:
    group: np.ndarray  # index into groups
    tools: np.ndarray  # runs × tools, bool
    failed: np.ndarray
    fclass: np.ndarray  # index into CLASSES, -1 for ok
    latency_ms: np.ndarray
    tokens: np.ndarray
    calls: np.ndarray


def groups() -> list[tuple[str, str, str]]:
    """(project, scenario, model): the first half of the scenarios belong to the first project."""
    half = len(SCENARIOS) // 2
    return [(PROJECTS[0 if i < half else 1], s, m) for i, s in enumerate(SCENARIOS) for m in MODELS]


class World:
    """Per-group distributions, fixed by ``seed``."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        g = groups()
        self.groups = g
        self.weights = rng.dirichlet(np.full(len(g), 3.0))
        self.fail_p = rng.uniform(0.02, 0.10, len(g))
        self.class_p = rng.dirichlet(np.ones(len(CLASSES)), len(g))
        self.lat_median = rng.uniform(300, 3000, len(g))
        self.tok_mean = rng.uniform(400, 2500, len(g))
        self.calls_mean = rng.uniform(0.5, 4.0, len(g))
        # Each scenario uses 3 tools, each with its own probability per run.
        self.tool_p = np.zeros((len(g), len(TOOLS)))
        for si in range(len(SCENARIOS)):
            picks = rng.choice(len(TOOLS), 3, replace=False)
            probs = rng.uniform(0.3, 0.9, 3)
            for gi, (_, s, _) in enumerate(g):
                if s == SCENARIOS[si]:
                    self.tool_p[gi, picks] = probs

    def runs(self, rng: np.random.Generator, n: int, inj: Injection | None = None,
             hour_load: np.ndarray | None = None) -> Runs:  # fmt: skip
        inj = inj or Injection()
        grp = rng.choice(len(self.groups), n, p=self.weights)
        tools = rng.random((n, len(TOOLS))) < self.tool_p[grp]
        fail_p = self.fail_p[grp].copy()
        lat_mult = np.ones(n)
        if hour_load is not None:  # daily rhythm: busy hours are slower and fail more
            fail_p *= hour_load
            lat_mult *= hour_load
        forced = np.zeros(n, dtype=bool)
        if inj.fail_group is not None:
            gi = [i for i, (_, s, m) in enumerate(self.groups) if (s, m) == inj.fail_group][0]
            hit = grp == gi
            old = fail_p.copy()
            fail_p = np.where(hit, np.maximum(fail_p, inj.fail_rate), fail_p)
            forced = hit
        failed = rng.random(n) < fail_p
        cum = np.cumsum(self.class_p[grp], axis=1)
        drawn = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), len(CLASSES) - 1)
        fclass = np.where(failed, drawn, -1)
        if inj.fail_group is not None:
            extra_fail = failed & forced & (rng.random(n) < 1 - old / np.maximum(fail_p, 1e-9))
            fclass[extra_fail] = CLASSES.index(inj.fail_class)
        if inj.slow_tool is not None:
            ti = TOOLS.index(inj.slow_tool)
            lat_mult = np.where(tools[:, ti], lat_mult * inj.slow_factor, lat_mult)
        latency = np.round(self.lat_median[grp] * lat_mult * rng.lognormal(0.0, 0.6, n))
        tokens = np.maximum(1, rng.lognormal(np.log(self.tok_mean[grp]), 0.5)).astype(np.int64)
        calls = rng.poisson(self.calls_mean[grp])
        return Runs(grp, tools, failed, fclass, latency, tokens, calls)


def _bins(latency: np.ndarray) -> np.ndarray:
    uniq, inv = np.unique(latency, return_inverse=True)
    keys = np.array([bin_of(float(v)) for v in uniq], dtype=np.int64)
    return keys[inv]


def _sum_by_group(world: World, runs: Runs, mask: np.ndarray, bins: np.ndarray) -> dict[int, SliceStats]:
    g = runs.group[mask]
    ng = len(world.groups)

    def count(weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(g, weights=weights, minlength=ng)

    tok = runs.tokens[mask].astype(np.float64)
    calls = runs.calls[mask].astype(np.float64)
    n, err = count(), count(runs.failed[mask].astype(np.float64))
    t, tsq, c, csq = count(tok), count(tok * tok), count(calls), count(calls * calls)
    fcl = runs.fclass[mask]
    per_class = [count((fcl == k).astype(np.float64)) for k in range(len(CLASSES))]
    b = bins[mask]
    lo = int(b.min()) if len(b) else 0
    combined, counts = np.unique(g.astype(np.int64) * (1 << 32) + (b - lo), return_counts=True)
    pairs = np.stack([combined >> 32, (combined & 0xFFFFFFFF) + lo])
    out: dict[int, SliceStats] = {}
    for gi in np.flatnonzero(n):
        out[int(gi)] = SliceStats(
            n=int(n[gi]), errors=int(err[gi]),
            classes={CLASSES[k]: int(per_class[k][gi]) for k in range(len(CLASSES)) if per_class[k][gi]},
            tokens=int(t[gi]), tokens_sq=int(tsq[gi]), tool_calls=int(c[gi]), tool_calls_sq=int(csq[gi]),
        )  # fmt: skip
    for (gi, b), k in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        out[gi].bins[b] = k
    return out


def cells(world: World, runs: Runs) -> tuple[dict[tuple, SliceStats], dict[tuple, SliceStats]]:
    """The runs summed into core cells (project, scenario, model) and tool cells (… + tool)."""
    bins = _bins(runs.latency_ms)
    every = np.ones(len(runs.group), dtype=bool)
    core = {world.groups[gi]: st for gi, st in _sum_by_group(world, runs, every, bins).items()}
    tool: dict[tuple, SliceStats] = {}
    for ti, name in enumerate(TOOLS):
        for gi, st in _sum_by_group(world, runs, runs.tools[:, ti], bins).items():
            tool[(*world.groups[gi], name)] = st
    return core, tool


def sources(seed: int, *, runs_per_day: int = 3000, baseline_days: int = 7,
            inj: Injection | None = None) -> list[Source]:  # fmt: skip
    """A current day and ``baseline_days`` before it, as the two reads the API makes."""
    world = World(seed)
    rng = np.random.default_rng(seed + 10_000)
    cur_core, cur_tool = cells(world, world.runs(rng, runs_per_day, inj))
    base_core, base_tool = cells(world, world.runs(rng, runs_per_day * baseline_days))
    return [
        Source(("project", "scenario", "model"), cur_core, base_core),
        Source(("project", "scenario", "model", "tool"), cur_tool, base_tool, member=True),
    ]
