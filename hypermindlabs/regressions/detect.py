"""Which slices regressed against the baseline: slicing, testing, false-discovery control, folding
and ranking. Pure: per-window aggregates in, findings out.

The input is the finest groups a rollup read gives (one :class:`Source` per cube read: the run
dimensions, optionally with one *member* dimension — the tool a run used, or one tag key), for the
current and the baseline window. Every slice tested is derived from them by summing: the total,
each single dimension and each pair (members pair with run dimensions only). Each slice with
enough runs in both windows gets every metric's test; Benjamini–Hochberg over all of them controls
the false-discovery rate (scipy's ``false_discovery_control``), and a finding also needs its
metric's minimum effect.

Folding prefers the most specific explanation. Between a finding and a finding one dimension more
specific (same metric): when the parent *minus* the child no longer regresses, the child explains
the parent and the parent folds under it (the demo's model × scenario regression leaks into the
model's and the scenario's marginals); when the parent minus the child still regresses, the
regression is broader than the child and the child folds under the parent (a tool's timeout
burst, spread over every model, shows on each model × tool pair). Slices with exactly the runs
of a less specific one (a scenario that belongs to one project) are tested once, as the less
specific one. A failure-class finding folds under its slice's failure-rate finding. Roots are
ranked by their score, runs affected per hour.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from scipy import stats as sps

from hypermindlabs.core.sketch import bin_value
from hypermindlabs.regressions import significance as sig
from hypermindlabs.regressions.significance import SCALARS, Params, Result

__all__ = [
    "METRICS",
    "RUN_DIMS",
    "SliceKey",
    "SliceStats",
    "Source",
    "Finding",
    "Analysis",
    "analyze",
    "slice_dict",
    "dimension_order",
]

METRICS: tuple[str, ...] = (
    "failure_rate", "p95_latency_ms", "tokens_per_run", "tool_calls_per_run", "failure_class_share",
)  # fmt: skip
#: Dimensions every run has (its own); ``tool`` and ``tag.<key>`` are member dimensions.
RUN_DIMS: tuple[str, ...] = ("project", "model", "scenario")
_ORDER = {"project": 0, "model": 1, "scenario": 2, "tool": 3}

#: A slice: its (dimension, value) pairs in :func:`dimension_order`; ``()`` is the total.
SliceKey = tuple[tuple[str, str], ...]


def dimension_order(dim: str) -> tuple[int, str]:
    return (_ORDER.get(dim, 4), dim)


def slice_dict(key: SliceKey) -> dict[str, str]:
    return dict(key)


@dataclass
class SliceStats:
    """What a group of runs sums to in one window (what the rollups keep)."""

    n: int = 0
    errors: int = 0
    classes: dict[str, int] = field(default_factory=dict)  # failed runs per failure class
    bins: dict[int, int] = field(default_factory=dict)  # latency sketch (ms)
    tokens: int = 0
    tokens_sq: float = 0.0  # floating point in the rollups (migration 0023)
    tool_calls: int = 0
    tool_calls_sq: float = 0.0

    def scalars(self) -> list[float]:
        return [self.n, self.errors, self.tokens, self.tokens_sq, self.tool_calls, self.tool_calls_sq]


@dataclass(frozen=True)
class Source:
    """The finest groups of one read: ``dims`` name the group values; when ``member`` is set, the
    last dimension is a member (``tool`` or ``tag.<key>``: a run may be in several groups)."""

    dims: tuple[str, ...]
    current: Mapping[tuple[Any, ...], SliceStats]
    baseline: Mapping[tuple[Any, ...], SliceStats]
    member: bool = False
    #: The current window cut into equal consecutive parts (optional; the same count in every
    #: source): a finding's score is the median of its parts' scores, so a burst confined to a few
    #: hours ranks below a shift that persists through the window. With parts, ``current`` may be
    #: left empty: it is then their sum.
    parts: tuple[Mapping[tuple[Any, ...], SliceStats], ...] = ()


@dataclass
class Finding:
    slice: SliceKey
    metric: str
    failure_class: str | None
    baseline_value: float
    current_value: float
    p_value: float
    q_value: float
    test: str
    baseline_n: int
    current_n: int
    impact: float
    impact_unit: str
    score: float
    extra: dict[str, Any] = field(default_factory=dict)
    folded: list[Finding] = field(default_factory=list)
    window_score: float = 0.0  # the score over the whole window (``score`` is its robust form)
    persistence: float = 1.0  # median part's effect / the window's (low: a burst, not a shift)
    effect: float = 0.0
    se: float = 0.0

    @property
    def change_abs(self) -> float:
        return self.current_value - self.baseline_value

    @property
    def change_rel(self) -> float | None:
        return self.change_abs / self.baseline_value if self.baseline_value else None


@dataclass
class Analysis:
    tests: int
    findings: list[Finding]
    slices: int
    #: The latency bins of the input, sorted: a p95 finding's ``threshold_index`` indexes them.
    bin_ids: list[int] = field(default_factory=list)


# -- slicing ------------------------------------------------------------------------------------
def _keys_of(src: Source, values: tuple[Any, ...], wanted: set[str]) -> list[SliceKey]:
    run_pairs = [(d, v) for d, v in zip(src.dims, values, strict=True) if d in RUN_DIMS]
    run_pairs = [(d, v) for d, v in run_pairs if d in wanted]
    out: list[SliceKey] = []
    if src.member:
        mdim, mval = src.dims[-1], values[-1]
        if mdim not in wanted or mval is None:
            return out
        out.append(((mdim, mval),))
        for d, v in run_pairs:
            if v is not None:
                out.append(tuple(sorted([(d, v), (mdim, mval)], key=lambda kv: dimension_order(kv[0]))))
        return out
    out.append(())
    for size in (1, 2):
        for combo in itertools.combinations(run_pairs, size):
            if all(v is not None for _, v in combo):
                out.append(tuple(combo))
    return out


@dataclass
class _Table:
    """Per slice and window (0 current, 1 baseline, 2… the current window's parts): scalars,
    failed runs per class and latency bins (dense columns)."""

    keys: list[SliceKey]
    index: dict[SliceKey, int]
    scalars: list[np.ndarray]  # per window: slices × SCALARS
    classes: list[np.ndarray]  # per window: slices × class names
    bins: list[np.ndarray]  # per window: slices × bin ids
    class_names: list[str]
    bin_values: np.ndarray
    cover: list[frozenset[tuple[Any, ...]]]  # the run-dimension cells each slice sums
    member: list[tuple[str, str] | None]  # its member dimension and value, if any
    bin_ids: list[int] = field(default_factory=list)  # the bins' ids, in column order

    def within(self, a: SliceKey, b: SliceKey) -> bool:
        """Are the runs of slice ``a`` a strict subset of those of ``b``?"""
        i, j = self.index[a], self.index[b]
        if i == j or not self.cover[i] <= self.cover[j]:
            return False
        if self.member[j] is not None and self.member[i] != self.member[j]:
            return False
        return self.cover[i] != self.cover[j] or self.member[i] != self.member[j]

    def rows(self, w: int, idx: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.scalars[w][idx], self.classes[w][idx], self.bins[w][idx]

    def row(self, key: SliceKey, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.rows(w, self.index[key])


def _build(sources: Sequence[Source], wanted: set[str]) -> _Table:
    n_parts = len(sources[0].parts) if sources else 0
    if any(len(s.parts) != n_parts for s in sources):
        raise ValueError("every source needs the same number of parts")
    windows = [[s.current, s.baseline, *s.parts] for s in sources]
    # Every cell's latency bins as flat arrays per (source, window): keys, counts, and how many
    # per cell (the bins are most of the input: filled vectorized, not per bin).
    flat: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
    class_names: set[str] = set()
    for per_window in windows:
        row = []
        for cells in per_window:
            sts = list(cells.values())
            lens = np.fromiter((len(st.bins) for st in sts), dtype=np.int64, count=len(sts))
            total = int(lens.sum())
            keys_ = np.fromiter(itertools.chain.from_iterable(st.bins for st in sts), dtype=np.int64, count=total)
            vals = np.fromiter(itertools.chain.from_iterable(st.bins.values() for st in sts), dtype=np.int64,
                               count=total)  # fmt: skip
            row.append((keys_, vals, lens))
            for st in sts:
                class_names.update(st.classes)
        flat.append(row)
    all_keys = [k for row in flat for k, _, _ in row]
    bins_arr = np.unique(np.concatenate(all_keys)) if all_keys else np.zeros(0, dtype=np.int64)
    bins_sorted = bins_arr.tolist()
    names = sorted(class_names)
    class_col = {c: i for i, c in enumerate(names)}
    keys: list[SliceKey] = []
    index: dict[SliceKey, int] = {}
    cover: list[set[tuple[Any, ...]]] = []
    member: list[tuple[str, str] | None] = []
    nw = 2 + n_parts
    width = len(SCALARS) + len(names) + len(bins_sorted)  # columns per window
    per_source: list[tuple[list[int], list[int], np.ndarray]] = []
    for si, src in enumerate(sources):
        run_dims = src.dims[:-1] if src.member else src.dims
        cell_values = list(dict.fromkeys(v for cells in windows[si] for v in cells))
        row_of = {v: r for r, v in enumerate(cell_values)}
        slice_idx: list[int] = []  # (slice, cell) pairs of the indicator matrix
        cell_idx: list[int] = []
        for r, values in enumerate(cell_values):
            cell = tuple(sorted(zip(run_dims, values, strict=False)))
            for key in _keys_of(src, values, wanted):
                j = index.get(key)
                if j is None:
                    j = index[key] = len(keys)
                    keys.append(key)
                    cover.append(set())
                    member.append((src.dims[-1], values[-1]) if src.member else None)
                cover[j].add(cell)
                slice_idx.append(j)
                cell_idx.append(r)
        # One dense matrix per source: per cell, every window's scalars, classes and bins side by side
        # (window w at columns w·width …), filled in one assignment per kind ((row, column) pairs
        # are unique), so every window's slices are one sparse product away. Floating point: the
        # sums of squares pass 2^63 (migration 0023); counts stay exact (below 2^53) and the
        # classes and bins are integers again below.
        mat = np.zeros((len(cell_values), nw * width), dtype=np.float64)
        ri: list[int] = []
        rj: list[int] = []
        rv: list[int] = []
        for w, cells in enumerate(windows[si]):
            base_col = w * width
            at = [row_of[values] for values in cells]
            if at:
                mat[at, base_col : base_col + len(SCALARS)] = [st.scalars() for st in cells.values()]
            cls_col = base_col + len(SCALARS)
            for r, st in zip(at, cells.values(), strict=True):
                for cname, k in st.classes.items():
                    ri.append(r)
                    rj.append(cls_col + class_col[cname])
                    rv.append(k)
            keys_, vals, lens = flat[si][w]
            if len(keys_):
                bin_col0 = cls_col + len(names)
                mat[np.repeat(np.asarray(at, dtype=np.int64), lens), bin_col0 + np.searchsorted(bins_arr, keys_)] = vals
        if ri:
            mat[ri, rj] = rv
        if not src.current and src.parts:  # the current window is the sum of its parts
            mat[:, :width] = mat[:, 2 * width :].reshape(len(cell_values), n_parts, width).sum(axis=1)
        per_source.append((slice_idx, cell_idx, mat))
    n = len(keys)
    out = np.zeros((n, nw * width), dtype=np.float64)
    for slice_idx, cell_idx, mat in per_source:
        if not slice_idx:
            continue
        ind = sparse.csr_matrix((np.ones(len(slice_idx), dtype=np.int64), (slice_idx, cell_idx)),
                                shape=(n, len(mat)))  # fmt: skip
        out += ind @ mat
    out_sc = [out[:, w * width : w * width + len(SCALARS)] for w in range(nw)]
    out_cl = [out[:, w * width + len(SCALARS) : w * width + len(SCALARS) + len(names)].astype(np.int64)
              for w in range(nw)]  # fmt: skip
    out_bn = [out[:, w * width + len(SCALARS) + len(names) : (w + 1) * width].astype(np.int64) for w in range(nw)]
    bin_values = np.array([bin_value(b) for b in bins_sorted], dtype=np.float64)
    # Slices summing the same cells (a scenario that belongs to one project, a tool used in one
    # scenario only) have the same runs: test them once, under the least specific name.
    best: dict[tuple[frozenset[tuple[Any, ...]], Any], int] = {}
    for j, key in enumerate(keys):
        ident = (frozenset(cover[j]), member[j])
        kept = best.get(ident)
        if kept is None or (len(key), key) < (len(keys[kept]), keys[kept]):
            best[ident] = j
    keep = np.asarray(sorted(best.values()), dtype=np.int64)
    return _Table(
        [keys[j] for j in keep], {keys[j]: i for i, j in enumerate(keep)}, [a[keep] for a in out_sc],
        [a[keep] for a in out_cl], [a[keep] for a in out_bn], names, bin_values, [frozenset(cover[j]) for j in keep],
        [member[j] for j in keep], bins_sorted,
    )  # fmt: skip


# -- testing ------------------------------------------------------------------------------------
Rows = tuple[np.ndarray, np.ndarray, np.ndarray]


def _run_test(metric: str, cls: int | None, cur: Rows, base: Rows, p: Params, hours: float,
              bin_values: np.ndarray, with_p: bool = True) -> Result:  # fmt: skip
    """One metric's test over rows (``cur``/``base``: scalars, classes, bins arrays); without
    ``with_p`` only the values and effects (the p-values are NaN)."""
    if metric == "failure_rate":
        return sig.failure_rate(cur[0], base[0], p, hours, with_p)
    if metric == "failure_class_share":
        assert cls is not None  # noqa: S101 - internal contract
        return sig.class_share(cur[1][:, cls], cur[0][:, sig.N], base[1][:, cls], base[0][:, sig.N], p, hours,
                               with_p)  # fmt: skip
    if metric == "p95_latency_ms":
        return sig.p95_exceedance(cur[2], base[2], bin_values, p, hours, with_p)
    if metric == "tokens_per_run":
        return sig.mean_per_run(cur[0], base[0], sig.TOK, p, hours, min_abs=p.min_abs_tokens,
                                unit="extra_tokens_per_hour", with_p=with_p)  # fmt: skip
    if metric == "tool_calls_per_run":
        return sig.mean_per_run(cur[0], base[0], sig.CALLS, p, hours, min_abs=p.min_abs_tool_calls,
                                unit="extra_tool_calls_per_hour", with_p=with_p)  # fmt: skip
    raise ValueError(f"unknown metric {metric!r}")


def _weight(metric: str, p: Params) -> float:
    if metric in ("failure_rate", "failure_class_share"):
        return p.weight_failed
    if metric == "p95_latency_ms":
        return p.weight_slow
    return p.weight_cost


def _extra(metric: str, res: Result, i: int) -> dict[str, Any]:
    if metric != "p95_latency_ms":
        return {}
    return {
        "above_baseline_p95": int(res.extra["above"][i]),
        "baseline_above_p95": int(res.extra["baseline_above"][i]),
        "expected_above": float(res.extra["expected_above"][i]),
        "extra_latency_ms_x_runs": float(res.extra["extra_latency"][i]),
        "threshold_index": int(res.extra["threshold_index"][i]),
    }


def analyze(sources: Sequence[Source], *, params: Params | None = None, current_hours: float,
            metrics: Iterable[str] = METRICS, dimensions: Iterable[str] | None = None) -> Analysis:  # fmt: skip
    """Test every slice × metric, control the FDR, fold and rank. ``current_hours`` is the current
    window's length (impacts are per hour of it)."""
    p = params or Params()
    metrics = [m for m in METRICS if m in set(metrics)]
    wanted = set(dimensions) if dimensions is not None else {d for s in sources for d in s.dims}
    if not sources:
        return Analysis(0, [], 0)
    t = _build(sources, wanted)
    if not t.keys:
        return Analysis(0, [], 0)
    eligible = np.flatnonzero((t.scalars[0][:, sig.N] >= p.min_runs) & (t.scalars[1][:, sig.N] >= p.min_runs))
    n_parts = len(t.scalars) - 2
    part_hours = current_hours / n_parts if n_parts else current_hours
    # (metric, class column, Result, slice rows) per family; all p-values go into one BH.
    families: list[tuple[str, int | None, Result, np.ndarray, None]] = []
    for metric in metrics:
        groups: list[tuple[int | None, np.ndarray]] = []
        n_c, n_b = t.scalars[0][eligible, sig.N], t.scalars[1][eligible, sig.N]
        if metric == "failure_class_share":
            for col in range(len(t.class_names)):
                k = t.classes[0][eligible, col] + t.classes[1][eligible, col]
                present = eligible[(k > 0) & (n_c * k / (n_c + n_b) >= p.min_expected)]
                if len(present):
                    groups.append((col, present))
        elif metric == "failure_rate":
            k = t.scalars[0][eligible, sig.ERR] + t.scalars[1][eligible, sig.ERR]
            groups.append((None, eligible[n_c * k / (n_c + n_b) >= p.min_expected]))
        else:
            groups.append((None, eligible))
        for ci, rows in groups:
            res = _run_test(metric, ci, t.rows(0, rows), t.rows(1, rows), p, current_hours, t.bin_values)
            families.append((metric, ci, res, rows, None))
    pvals = np.concatenate([f[2].p_value for f in families]) if families else np.array([])
    tests = int(len(pvals))
    if tests == 0:
        return Analysis(0, [], len(t.keys), t.bin_ids)
    qvals = sps.false_discovery_control(np.clip(pvals, 0.0, 1.0), method="bh")
    found: list[Finding] = []
    offset = 0
    for metric, ci, res, rows, _ in families:
        w = _weight(metric, p)
        hits = [i for i in range(len(rows)) if qvals[offset + i] <= p.alpha and res.effect_ok[i]]
        parts = None
        if n_parts and hits:  # the parts' effects, for the findings only
            sel = rows[hits]
            base = t.rows(1, sel)
            parts = np.stack([_run_test(metric, ci, t.rows(w_, sel), base, p, part_hours, t.bin_values,
                                        with_p=False).effect for w_ in range(2, 2 + n_parts)])  # fmt: skip
        for h, i in enumerate(hits):
            slice_row = rows[i]
            q = float(qvals[offset + i])
            whole = float(res.score[i])
            # The score that persists: scaled by the median part's effect over the window's.
            persist = 1.0
            if parts is not None and res.effect[i] > 0:
                part_effects = parts[:, h][np.isfinite(parts[:, h])]
                if len(part_effects):
                    persist = float(np.clip(np.median(part_effects) / res.effect[i], 0.0, 1.0))
            found.append(Finding(
                slice=t.keys[int(slice_row)], metric=metric,
                failure_class=t.class_names[ci] if ci is not None else None,
                baseline_value=float(res.baseline_value[i]), current_value=float(res.current_value[i]),
                p_value=float(res.p_value[i]), q_value=q, test=res.test,
                baseline_n=int(t.scalars[1][slice_row, sig.N]), current_n=int(t.scalars[0][slice_row, sig.N]),
                impact=float(res.impact[i]), impact_unit=res.impact_unit, score=w * whole * persist,
                extra=_extra(metric, res, i), window_score=w * whole, persistence=persist,
                effect=float(res.effect[i]), se=float(res.se[i]),
            ))  # fmt: skip
        offset += len(rows)
    roots = _fold(found, t, p, current_hours)
    return Analysis(tests, roots, len(t.keys), t.bin_ids)


# -- folding and ranking ------------------------------------------------------------------------
_Rest = tuple[bool, float, float]  # (still regresses, effect, standard error) of a residual


def _residuals(metric: str, cls: int | None, pairs: Iterable[tuple[SliceKey, SliceKey]], t: _Table, p: Params,
               hours: float) -> dict[tuple[SliceKey, SliceKey], _Rest | None]:  # fmt: skip
    """The metric's test on ``outer`` minus ``inner`` for many pairs at once (None: too few runs)."""
    todo = list(dict.fromkeys(pairs))
    out: dict[tuple[SliceKey, SliceKey], _Rest | None] = dict.fromkeys(todo)
    if not todo:
        return out
    outer = np.array([t.index[a] for a, _ in todo])
    inner = np.array([t.index[b] for _, b in todo])
    cur = tuple(a[outer] - a[inner] for a in (t.scalars[0], t.classes[0], t.bins[0]))
    base = tuple(a[outer] - a[inner] for a in (t.scalars[1], t.classes[1], t.bins[1]))
    ok = np.flatnonzero((cur[0][:, sig.N] >= p.min_runs) & (base[0][:, sig.N] >= p.min_runs))
    if not len(ok):
        return out
    res = _run_test(metric, cls, tuple(a[ok] for a in cur), tuple(a[ok] for a in base), p, hours, t.bin_values)
    for r, i in enumerate(ok):
        regresses = bool(res.p_value[r] < p.fold_alpha and res.effect_ok[r])
        out[todo[i]] = (regresses, float(res.effect[r]), float(res.se[r]))
    return out


def _regresses(rest: _Rest | None) -> bool:
    return rest is not None and rest[0]


def _standout(inner: Finding, rest: _Rest | None, p: Params) -> bool:
    """Does ``inner`` regress clearly more than the rest of a superset: significantly (one-sided z
    on the effects) and by at least ``confined_ratio`` times the rest's effect? Then it is its own
    regression, not a part of the superset's."""
    if rest is None:
        return True
    _, effect, se_rest = rest
    se = math.hypot(inner.se, se_rest)
    if se > 0:
        special = 0.5 * math.erfc((inner.effect - effect) / se / math.sqrt(2)) < p.fold_alpha
    else:
        special = inner.effect > effect
    return special and inner.effect >= p.confined_ratio * effect


def _tool_only(t: _Table, key: SliceKey) -> SliceKey | None:
    """For a tool × run-dimension pair, the tool's own slice."""
    m = t.member[t.index[key]]
    if m is None or len(key) < 2 or (m,) not in t.index:
        return None
    return (m,)


def _confined(g: Finding, f: Finding, t: _Table, tool_pairs: Mapping[SliceKey, SliceKey],
              rest: Mapping[tuple[SliceKey, SliceKey], _Rest | None], p: Params) -> bool:  # fmt: skip
    """Is ``g`` (a tool × dimension pair inside ``f``, a slice of run attributes only) just where
    ``f``'s regression shows, the tool regressing elsewhere not at all or clearly less? Then ``f``
    is the explanation: which tools a run calls is decided during the run, and the regression
    itself changes it, whereas a run's project, model, scenario and tags are fixed when it starts."""
    gi, fi = t.index[g.slice], t.index[f.slice]
    if t.member[gi] is None or t.member[fi] is not None or len(g.slice) < 2:
        return False
    tk = tool_pairs.get(g.slice)
    if tk is None:
        return True
    r = rest[(tk, g.slice)]
    return not _regresses(r) or _standout(g, r, p)


def _fold(found: list[Finding], t: _Table, p: Params, hours: float) -> list[Finding]:
    """Fold each finding under the one that explains it (module docstring); return the roots."""
    by_family: dict[tuple[str, str | None], dict[SliceKey, Finding]] = {}
    for f in found:
        by_family.setdefault((f.metric, f.failure_class), {})[f.slice] = f
    rates = by_family.get(("failure_rate", None), {})
    target: dict[int, Finding] = {}
    for (metric, cname), family in by_family.items():
        cls = t.class_names.index(cname) if cname is not None else None
        items = list(family.items())
        subs = [(key, f, ok, g) for key, f in items for ok, g in items if t.within(ok, key)]
        sups = [(key, f, ok, g) for key, f in items for ok, g in items if t.within(key, ok)]
        # A class share on a slice can also be explained by a failure-rate finding on a subset.
        cross = [(key, f, ok, g) for key, f in items for ok, g in rates.items()
                 if metric == "failure_class_share" and t.within(ok, key)]  # fmt: skip
        tool_pairs = {key: tk for key, _ in items if (tk := _tool_only(t, key)) is not None}
        rest = _residuals(metric, cls, [(k, ok) for k, _, ok, _ in subs + cross] + [(ok, k) for k, _, ok, _ in sups]
                          + [(tk, k) for k, tk in tool_pairs.items()], t, p, hours)  # fmt: skip

        absorbed: list[tuple[Finding, Finding]] = []  # (tool pair, the run slice that explains it)
        for key, f in items:
            explained_by: list[Finding] = []  # findings on a subset of f's runs that explain f
            for k, _, ok, g in subs:
                if k != key:
                    continue
                res_ = rest[(key, ok)]
                if not _regresses(res_) or (
                    _standout(g, res_, p) and g.window_score >= p.explain_share * f.window_score
                ):
                    if _confined(g, f, t, tool_pairs, rest, p):
                        absorbed.append((g, f))
                    else:
                        explained_by.append(g)
            if not explained_by:
                explained_by = [g for k, _, ok, g in cross if k == key and not _regresses(rest[(key, ok)])]
            broader = [g for k, _, ok, g in sups if k == key and _regresses(rest[(ok, key)])
                       and not _standout(f, rest[(ok, key)], p)]  # fmt: skip
            if explained_by:
                target[id(f)] = max(explained_by, key=lambda g: (g.window_score, -g.current_n))
            elif broader:
                target[id(f)] = max(broader, key=lambda g: (g.window_score, g.current_n))
        for g, f in absorbed:
            if target.get(id(f)) is not g:
                target[id(g)] = f
    # One slice, one entry: its other metrics' findings fold under its most severe one (failure
    # rate, failure-class share, p95, tokens, tool calls).
    by_slice: dict[SliceKey, list[Finding]] = {}
    for f in found:
        if id(f) not in target:
            by_slice.setdefault(f.slice, []).append(f)
    for fs in by_slice.values():
        lead = min(fs, key=lambda f: (METRICS.index(f.metric) if f.metric != "failure_class_share" else 0.5,
                                      -f.score))  # fmt: skip
        for f in fs:
            if f is not lead:
                target[id(f)] = lead

    def root(f: Finding) -> Finding:
        seen: list[int] = []
        cur = f
        while id(cur) in target and id(cur) not in seen:
            seen.append(id(cur))
            cur = target[id(cur)]
        if id(cur) in seen:  # a cycle: its best-scoring member is the root
            by_id = {id(x): x for x in found}
            cycle = [by_id[i] for i in seen[seen.index(id(cur)):]]
            return max(cycle, key=lambda x: (x.score, len(x.slice)))
        return cur

    roots: dict[int, Finding] = {}
    for f in found:
        top = root(f)
        roots.setdefault(id(top), top)
        if top is not f:
            top.folded.append(f)
    out = sorted(roots.values(), key=_rank_key)
    for r in out:
        r.folded.sort(key=_rank_key)
    return out


def _rank_key(f: Finding) -> tuple[Any, ...]:
    # Most runs affected per hour first; among equals the more specific slice, then a stable order.
    return (-f.score, -len(f.slice), f.metric, f.slice, f.failure_class or "")
