"""One statistical test per metric, vectorized over slices. Pure (numpy arrays in, arrays out).

Every test is one-sided: a regression is the current window being *worse* than the baseline;
improvements are not findings. Each returns, per slice, the baseline and current values, the
p-value, whether the effect clears the minimum absolute and relative effect, the metric's impact
and a *score* in runs affected per hour (what findings are ranked by, across metrics).

Rows are per slice. ``scalars`` columns follow :data:`SCALARS`; ``bins`` columns are the latency
sketch's bins in increasing order (:mod:`hypermindlabs.sketch`); ``classes`` columns count failed
runs per failure class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

__all__ = ["SCALARS", "Params", "Result", "failure_rate", "class_share", "p95_exceedance", "mean_per_run",
           "betabinom_sf"]

#: The summed measures of a slice: runs, failed runs, tokens (real and proxy) and their per-run
#: sum of squares, tool calls and their per-run sum of squares.
SCALARS: tuple[str, ...] = ("n", "errors", "tokens", "tokens_sq", "tool_calls", "tool_calls_sq")
N, ERR, TOK, TOK_SQ, CALLS, CALLS_SQ = range(len(SCALARS))


@dataclass(frozen=True)
class Params:
    """Thresholds of the analysis. A finding needs enough runs in both windows, a q-value at most
    ``alpha`` after Benjamini–Hochberg over every test, and an effect at least the absolute *and*
    the relative minimum of its metric (a significant but negligible change is not a finding)."""

    min_runs: int = 30
    # Rate tests also need this many failures expected in the current window under no change
    # (current runs × the pooled rate: the margin Fisher's test conditions on, so selecting on it
    # keeps the test exact); below it a slice has no power and only noise could pass.
    min_expected: float = 5.0
    alpha: float = 0.05
    min_abs_rate: float = 0.02  # failure rate and class share, in absolute points (0.02 = 2 pp)
    min_rel_rate: float = 0.25
    min_abs_latency_ms: float = 50.0
    min_rel_latency: float = 0.2
    min_abs_tokens: float = 20.0
    min_abs_tool_calls: float = 0.2
    min_rel_mean: float = 0.1
    fold_alpha: float = 0.05  # residual tests deciding which slice explains another
    explain_share: float = 0.5  # a special subset explains a slice holding this share of its excess
    confined_ratio: float = 3.0  # a tool pair is confined to its run slice: its effect ≥ 3× the tool's elsewhere
    # Score weights: runs affected per hour, a failed run counting fully, a slow one half, a run
    # costing more (tokens, tool calls; as a runs-equivalent) a quarter.
    weight_failed: float = 1.0
    weight_slow: float = 0.5
    weight_cost: float = 0.25

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Result:
    """Per-slice arrays of one metric's test (all the same length)."""

    test: str
    baseline_value: np.ndarray
    current_value: np.ndarray
    p_value: np.ndarray
    effect_ok: np.ndarray
    impact: np.ndarray
    impact_unit: str
    score: np.ndarray
    effect: np.ndarray  # the change on the scale folding compares slices on, and its standard error
    se: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def _rate_test(cur_k: np.ndarray, cur_n: np.ndarray, base_k: np.ndarray, base_n: np.ndarray,
               p: Params, hours: float, unit: str, with_p: bool = True) -> Result:  # fmt: skip
    """Fisher's exact test, one-sided: P(X ≥ k) for the current failures of a 2×2 table with
    fixed margins, i.e. the hypergeometric tail (scipy's ``fisher_exact(alternative="greater")``)."""
    cur_k, cur_n, base_k, base_n = (np.asarray(a, dtype=np.int64) for a in (cur_k, cur_n, base_k, base_n))
    with np.errstate(divide="ignore", invalid="ignore"):
        pc = np.where(cur_n > 0, cur_k / np.maximum(cur_n, 1), np.nan)
        pb = np.where(base_n > 0, base_k / np.maximum(base_n, 1), np.nan)
    if with_p:
        pval = np.ones(cur_k.shape)
        # A slice whose current failures are at most their expected count under no change has a
        # tail P(X ≥ k) of at least 0.5 (a hypergeometric median is its mean's floor or ceiling):
        # with alpha and fold_alpha below 0.5 its exact value changes no finding, no shown q-value
        # (BH's q below 0.5 comes from p-values below 0.5, whose ranks it keeps) and no residual
        # test, so it is not computed (the tail's bulk: most of the analysis' time at 10M events).
        # It stands at 1, a bound of the same side.
        need = cur_k > 0
        if p.alpha < 0.5 and p.fold_alpha < 0.5:
            need &= cur_k * (cur_n + base_n) > cur_n * (cur_k + base_k)
        if need.any():
            sf = sps.hypergeom.sf(cur_k[need] - 1, (cur_n + base_n)[need], (cur_k + base_k)[need], cur_n[need])
            pval[need] = np.clip(sf, 0.0, 1.0)
    else:
        pval = np.full(cur_k.shape, np.nan)
    diff = pc - pb
    effect = (diff >= p.min_abs_rate) & ((pb == 0) | (pc >= pb * (1 + p.min_rel_rate)))
    impact = diff * cur_n / hours
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(pc * (1 - pc) / cur_n + pb * (1 - pb) / base_n)
    return Result("fisher_exact", pb, pc, pval, effect, impact, unit, impact, diff, se)


def failure_rate(cur: np.ndarray, base: np.ndarray, p: Params, hours: float, with_p: bool = True) -> Result:
    """Share of runs that failed. (Every test takes ``with_p=False`` when only the effects are
    wanted: the p-values are then NaN and cost nothing.)"""
    return _rate_test(cur[:, ERR], cur[:, N], base[:, ERR], base[:, N], p, hours, "extra_failed_runs_per_hour",
                      with_p)  # fmt: skip


def class_share(cur_k: np.ndarray, cur_n: np.ndarray, base_k: np.ndarray, base_n: np.ndarray, p: Params,
                hours: float, with_p: bool = True) -> Result:  # fmt: skip
    """Share of runs that failed with one failure class (so a shift between classes shows even when
    the failure rate stays flat)."""
    return _rate_test(cur_k, cur_n, base_k, base_n, p, hours, "extra_failed_runs_per_hour", with_p)


def betabinom_sf(k: np.ndarray, n: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``scipy.stats.betabinom.sf(k, n, a, b)`` for arrays, the same numbers, in one vectorized call.

    scipy has no closed form for the beta-binomial's tail: its ``sf`` is ``1 − cdf`` with the cdf
    summed from the pmf at ``0 … k``, row by row in a Python loop (``_cdf_single``). Here every row's
    pmf terms go through ``betabinom.pmf`` at once and each row's terms are summed as scipy sums
    them, so the result is bit for bit scipy's (tests/test_regressions_stats.py checks it).
    Needs ``n ≥ 1``, ``a, b > 0``."""
    k, n = np.asarray(k, dtype=np.int64), np.asarray(n, dtype=np.int64)
    a, b = np.asarray(a), np.asarray(b)
    out = np.ones(k.shape, dtype=np.float64)  # k < 0: the whole support
    rows = np.flatnonzero((k >= 0) & (k < n))
    out[(k >= n)] = 0.0
    if len(rows):
        lens = k[rows] + 1
        ends = np.cumsum(lens)
        starts = ends - lens
        at = np.repeat(rows, lens)
        m = np.arange(int(ends[-1])) - np.repeat(starts, lens)
        pmf = sps.betabinom.pmf(m, n[at], a[at], b[at])
        cdf = np.fromiter((pmf[s:e].sum() for s, e in zip(starts.tolist(), ends.tolist(), strict=True)),
                          dtype=np.float64, count=len(rows))  # fmt: skip
        out[rows] = np.clip(1.0 - cdf, 0.0, 1.0)
    return out


def _nearest_rank_index(bins: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the column holding the nearest-rank ``q``-quantile and the rank itself."""
    n = bins.sum(axis=1)
    rank = np.maximum(1, np.ceil(q * n - 1e-9)).astype(np.int64)
    cum = np.cumsum(bins, axis=1)
    idx = np.argmax(cum >= rank[:, None], axis=1) if bins.shape[1] else np.zeros(len(bins), dtype=np.int64)
    return idx, rank


def p95_exceedance(cur_bins: np.ndarray, base_bins: np.ndarray, values: np.ndarray, p: Params,
                   hours: float, with_p: bool = True) -> Result:  # fmt: skip
    """Exceedance test of the p95: how many current runs lie above the baseline's p95.

    Under no change, each current run exceeds the baseline p95 with probability ``1 − F(t)``; for
    the baseline's nearest-rank order statistic ``t`` (rank ``r`` of ``m``) that probability is
    Beta(m − r + 1, r) distributed, so the count above among ``n`` current runs is beta-binomial:
    the binomial test against 5 % with the baseline's own sampling error included (exact and
    distribution-free; ties within a sketch bin only make it conservative). ``values`` are the
    bins' representative latencies (ms), in column order.
    """
    n_c = cur_bins.sum(axis=1)
    n_b = base_bins.sum(axis=1)
    t_idx, rank = _nearest_rank_index(base_bins, 0.95)
    c_idx, _ = _nearest_rank_index(cur_bins, 0.95)
    cum_c = np.cumsum(cur_bins, axis=1)
    below = np.take_along_axis(cum_c, t_idx[:, None], axis=1)[:, 0] if cur_bins.shape[1] else np.zeros_like(n_c)
    above = n_c - below
    a = np.maximum(n_b - rank + 1, 1)
    b = np.maximum(rank, 1)
    if with_p:
        live = (above > 0) & (n_b > 0) & (n_c > 0)
        pval = np.ones(len(n_c), dtype=np.float64)
        pval[live] = betabinom_sf(above[live] - 1, n_c[live], a[live], b[live])
    else:
        pval = np.full(len(n_c), np.nan)
    base_p95 = np.where(n_b > 0, values[t_idx] if len(values) else np.nan, np.nan)
    cur_p95 = np.where(n_c > 0, values[c_idx] if len(values) else np.nan, np.nan)
    diff = cur_p95 - base_p95
    effect = (diff >= p.min_abs_latency_ms) & (cur_p95 >= base_p95 * (1 + p.min_rel_latency))
    expected = n_c * a / (a + b)
    extra_slow = (above - expected) / hours
    cum_b = np.cumsum(base_bins, axis=1)
    below_b = np.take_along_axis(cum_b, t_idx[:, None], axis=1)[:, 0] if base_bins.shape[1] else np.zeros_like(n_b)
    extra = {"above": above, "expected_above": expected, "threshold_index": t_idx, "extra_latency": diff * n_c,
             "baseline_above": n_b - below_b}  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        share, e = above / n_c, a / (a + b)
        se = np.sqrt(share * (1 - share) / n_c + e * (1 - e) / (n_b + 1))
    return Result("binomial_exceedance", base_p95, cur_p95, pval, effect, extra_slow, "extra_slow_runs_per_hour",
                  extra_slow, share - e, se, extra)  # fmt: skip


def mean_per_run(cur: np.ndarray, base: np.ndarray, col: int, p: Params, hours: float, *, min_abs: float,
                 unit: str, with_p: bool = True) -> Result:  # fmt: skip
    """Welch's t-test on a per-run mean from count, sum and sum of squares (all rollups keep)."""
    def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = x[:, N].astype(np.float64)
        s = x[:, col].astype(np.float64)
        sq = x[:, col + 1].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = s / n
            var = np.maximum(sq - s * mean, 0.0) / (n - 1)
        return n, mean, np.sqrt(var)

    n_c, m_c, sd_c = moments(cur)
    n_b, m_b, sd_b = moments(base)
    ok = (n_c > 1) & (n_b > 1) & ((sd_c > 0) | (sd_b > 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        if with_p:
            res = sps.ttest_ind_from_stats(
                np.where(ok, m_c, 0.0), np.where(ok, sd_c, 1.0), np.where(ok, n_c, 2.0),
                np.where(ok, m_b, 0.0), np.where(ok, sd_b, 1.0), np.where(ok, n_b, 2.0),
                equal_var=False, alternative="greater",
            )  # fmt: skip
            pval = np.where(ok & np.isfinite(res.pvalue), res.pvalue, 1.0)
        else:
            pval = np.full(len(n_c), np.nan)
        diff = m_c - m_b
        rel = np.where(m_b > 0, diff / m_b, np.inf)
    effect = (diff >= min_abs) & (rel >= p.min_rel_mean)
    impact = diff * n_c / hours
    # Runs affected, as a runs-equivalent: the slice's runs per hour times the relative increase.
    score = n_c / hours * np.minimum(np.where(np.isfinite(rel), rel, 1.0), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(sd_c**2 / n_c / m_b**2 + m_c**2 * sd_b**2 / n_b / m_b**4)
    return Result("welch_t", m_b, m_c, pval, effect, impact, unit, score, rel, se)
