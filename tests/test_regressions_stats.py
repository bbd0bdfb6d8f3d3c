"""Regression statistics on synthetic data with known truth (pure: no store, no app)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from hypermindlabs.core.sketch import bin_of, bin_value
from hypermindlabs.regressions import Facet, Params, SliceStats, Source, analyze, attribute
from hypermindlabs.regressions import significance as sig
from tests.synthetic_slices import Injection, sources


def _scalars(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=np.int64)


# -- one test per metric, against scipy on raw data ---------------------------------------------
def test_the_failure_rate_test_is_fishers_exact_test_one_sided():
    cur = _scalars([[120, 30, 0, 0, 0, 0], [40, 2, 0, 0, 0, 0]])
    base = _scalars([[900, 72, 0, 0, 0, 0], [300, 12, 0, 0, 0, 0]])
    res = sig.failure_rate(cur, base, Params(), hours=24)
    for i in range(2):
        table = [[cur[i, 1], cur[i, 0] - cur[i, 1]], [base[i, 1], base[i, 0] - base[i, 1]]]
        assert res.p_value[i] == pytest.approx(sps.fisher_exact(table, alternative="greater").pvalue, rel=1e-9)
    assert res.current_value[0] == 0.25 and res.baseline_value[0] == 0.08
    assert res.impact[0] == pytest.approx((0.25 - 0.08) * 120 / 24)
    assert bool(res.effect_ok[0]) and not bool(res.effect_ok[1])  # 5 % against 4 %: below the 2 pp minimum


def test_the_mean_tests_are_welch_from_count_sum_and_sum_of_squares():
    rng = np.random.default_rng(3)
    a = rng.poisson(3.4, 150)
    b = rng.poisson(3.0, 900)
    cur = _scalars([[len(a), 0, 0, 0, int(a.sum()), int((a * a).sum())]])
    base = _scalars([[len(b), 0, 0, 0, int(b.sum()), int((b * b).sum())]])
    res = sig.mean_per_run(cur, base, sig.CALLS, Params(), 24, min_abs=0.2, unit="u")
    ref = sps.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert res.p_value[0] == pytest.approx(ref.pvalue, rel=1e-9)
    assert res.current_value[0] == pytest.approx(a.mean()) and res.baseline_value[0] == pytest.approx(b.mean())


def test_the_p95_test_counts_current_runs_above_the_baseline_p95_bin_against_a_beta_binomial():
    rng = np.random.default_rng(5)
    base_ms = rng.lognormal(6, 0.5, 800)
    cur_ms = rng.lognormal(6.3, 0.5, 120)
    ids = sorted({bin_of(v) for v in np.concatenate([base_ms, cur_ms])})
    col = {b: i for i, b in enumerate(ids)}

    def row(values: np.ndarray) -> np.ndarray:
        out = np.zeros(len(ids), dtype=np.int64)
        for v in values:
            out[col[bin_of(v)]] += 1
        return out

    values = np.array([bin_value(b) for b in ids])
    res = sig.p95_exceedance(row(cur_ms)[None, :], row(base_ms)[None, :], values, Params(), 24)
    r = int(np.ceil(0.95 * 800))
    threshold_bin = sorted(bin_of(v) for v in base_ms)[r - 1]
    above = sum(bin_of(v) > threshold_bin for v in cur_ms)
    assert res.extra["above"][0] == above
    assert res.p_value[0] == pytest.approx(sps.betabinom.sf(above - 1, 120, 800 - r + 1, r), rel=1e-9)
    assert res.baseline_value[0] == pytest.approx(bin_value(threshold_bin))


def test_the_vectorized_beta_binomial_tail_is_scipys_bit_for_bit():
    rng = np.random.default_rng(11)
    n = rng.integers(1, 2500, 400)
    k = (n * rng.uniform(-0.05, 1.0, 400)).astype(np.int64) - 1  # below, across and at the support's ends
    k[:3] = [-1, n[1] - 1, n[2]]
    m = rng.integers(30, 8000, 400)
    rank = np.maximum(1, np.ceil(0.95 * m)).astype(np.int64)
    a, b = np.maximum(m - rank + 1, 1), rank
    got = sig.betabinom_sf(k, n, a, b)
    assert np.array_equal(got, sps.betabinom.sf(k, n, a, b))
    assert got[0] == 1.0 and got[2] == 0.0


def test_effects_without_p_values_are_the_same_effects():
    rng = np.random.default_rng(5)
    cur = np.column_stack([rng.integers(30, 900, 50), rng.integers(0, 30, 50), rng.integers(0, 10**5, (50, 4))])
    base = np.column_stack([rng.integers(30, 900, 50), rng.integers(0, 30, 50), rng.integers(0, 10**5, (50, 4))])
    cur[:, 3], base[:, 3] = cur[:, 2] ** 2 // max(1, 30), base[:, 2] ** 2 // max(1, 30)
    for with_p, without in [
        (sig.failure_rate(cur, base, Params(), 24), sig.failure_rate(cur, base, Params(), 24, with_p=False)),
        (sig.mean_per_run(cur, base, sig.TOK, Params(), 24, min_abs=1, unit="u"),
         sig.mean_per_run(cur, base, sig.TOK, Params(), 24, min_abs=1, unit="u", with_p=False)),
    ]:  # fmt: skip
        assert np.array_equal(with_p.effect, without.effect, equal_nan=True)
        assert np.array_equal(with_p.effect_ok, without.effect_ok) and np.isnan(without.p_value).all()
    bins_c, bins_b = rng.integers(0, 40, (20, 30)), rng.integers(0, 40, (20, 30))
    values = np.arange(1, 31, dtype=np.float64) * 10
    full = sig.p95_exceedance(bins_c, bins_b, values, Params(), 24)
    bare = sig.p95_exceedance(bins_c, bins_b, values, Params(), 24, with_p=False)
    assert np.array_equal(full.effect, bare.effect, equal_nan=True) and np.isnan(bare.p_value).all()
    assert not np.isnan(full.p_value).any()


def test_every_test_goes_into_one_benjamini_hochberg_and_the_count_is_reported():
    src = sources(11)
    a = analyze(src, current_hours=24)
    # total, singles and pairs with enough runs, times the metrics (class share per class present)
    assert a.tests > 5 * 100
    assert a.findings == []


# -- detection with known truth -----------------------------------------------------------------
def test_a_failure_regression_confined_to_one_scenario_and_model_is_found_first_with_its_marginals_folded():
    src = sources(2, inj=Injection(fail_group=("faq", "m-mini"), fail_rate=0.30))
    core = src[0]
    cur_n = sum(s.n for s in core.current.values())
    base_n = sum(s.n for s in core.baseline.values())
    cur_rate = sum(s.errors for s in core.current.values()) / cur_n
    base_rate = sum(s.errors for s in core.baseline.values()) / base_n
    assert abs(cur_rate - base_rate) < 0.015  # the aggregate stays near flat

    a = analyze(src, current_hours=24)
    first = a.findings[0]
    assert dict(first.slice) == {"scenario": "faq", "model": "m-mini"}
    assert first.metric == "failure_rate"
    assert first.q_value < 1e-6 and first.current_value > 0.2 > 0.1 > first.baseline_value
    folded = {(g.slice, g.metric) for g in first.folded}
    assert ((("model", "m-mini"),), "failure_rate") in folded
    assert ((("scenario", "faq"),), "failure_rate") in folded
    # no marginal of it is listed beside it
    for other in a.findings[1:]:
        assert not set(other.slice) < set(first.slice)


def test_a_p95_regression_on_one_tool_is_found_first():
    a = analyze(sources(3, inj=Injection(slow_tool="crm", slow_factor=1.6)), current_hours=24)
    first = a.findings[0]
    assert dict(first.slice) == {"tool": "crm"}
    assert first.metric == "p95_latency_ms"
    assert first.current_value > 1.4 * first.baseline_value
    assert first.test == "binomial_exceedance"


def test_a_three_run_slice_with_two_failures_is_not_flagged():
    healthy = sources(4)
    cur = dict(healthy[0].current)
    base = dict(healthy[0].baseline)
    cur[("shop", "faq", "m-new")] = SliceStats(n=3, errors=2, classes={"tool_timeout": 2}, bins={bin_of(900): 3},
                                               tokens=3000, tokens_sq=3 * 1000**2, tool_calls=3, tool_calls_sq=3)
    base[("shop", "faq", "m-new")] = SliceStats(n=300, errors=6, classes={"tool_timeout": 6},
                                                bins={bin_of(900): 300}, tokens=300_000, tokens_sq=300 * 1000**2,
                                                tool_calls=300, tool_calls_sq=300)
    src = [Source(healthy[0].dims, cur, base), healthy[1]]
    a = analyze(src, current_hours=24)
    flagged = [f for f in a.findings for g in [f, *f.folded] if ("model", "m-new") in g.slice]
    assert flagged == []
    # and the same slice with real volume is flagged: the guard is the sample size, not the slice
    cur[("shop", "faq", "m-new")] = SliceStats(n=300, errors=200, classes={"tool_timeout": 200},
                                               bins={bin_of(900): 300}, tokens=300_000, tokens_sq=300 * 1000**2,
                                               tool_calls=300, tool_calls_sq=300)
    a = analyze([Source(healthy[0].dims, cur, base), healthy[1]], current_hours=24)
    assert any(("model", "m-new") in f.slice for f in a.findings)


def test_over_200_seeded_healthy_datasets_at_most_5_percent_yield_any_finding_at_the_defaults():
    datasets = 200
    with_findings = []
    tests = 0
    for seed in range(1000, 1000 + datasets):
        a = analyze(sources(seed), current_hours=24)
        tests += a.tests
        if a.findings:
            with_findings.append(seed)
    rate = len(with_findings) / datasets
    print(f"\nhealthy datasets with any finding: {len(with_findings)}/{datasets} = {rate:.1%} "
          f"(mean {tests / datasets:.0f} tests each; seeds {with_findings})")
    assert tests / datasets > 500  # many slices × metrics, not a handful
    assert rate <= 0.05


def test_folded_findings_are_never_listed_twice_and_roots_are_sorted_by_score():
    a = analyze(sources(3, inj=Injection(slow_tool="crm", slow_factor=1.6)), current_hours=24)
    seen = [(g.slice, g.metric, g.failure_class) for f in a.findings for g in [f, *f.folded]]
    assert len(seen) == len(set(seen))
    scores = [f.score for f in a.findings]
    assert scores == sorted(scores, reverse=True)


# -- attribution --------------------------------------------------------------------------------
def test_attribution_names_the_tag_values_and_clusters_whose_share_rose_most():
    now = [Facet({"release": "2.4.0", "env": "prod"}, "c-schema")] * 8 + [Facet({"release": "2.3.0", "env": "prod"})] * 2
    before = [Facet({"release": "2.3.0", "env": "prod"}, "c-timeout")] * 20
    out = attribute(now, before)
    assert [(a.kind, a.key, a.value) for a in out] == [("tag", "release", "2.4.0"), ("cluster", "cluster", "c-schema")]
    assert out[0].baseline_share == 0.0 and out[0].current_share == 0.8
    # a value every run has (env=prod) has no lift and is not named
    assert all(a.value != "prod" for a in out)


def test_a_rate_at_or_below_its_expected_count_gets_p_1_without_the_tail_and_the_rest_scipys_tail():
    # P(X >= k) is at least 0.5 when k is at most the expected count: at alpha < 0.5 its exact
    # value changes nothing, so it is not computed (the bulk of the tail, the analysis' main cost
    # at 10M events); an excess is tested exactly, and alpha = 0.5 computes every tail.
    cur = _scalars([[100, 3, 0, 0, 0, 0], [100, 5, 0, 0, 0, 0], [120, 30, 0, 0, 0, 0]])
    base = _scalars([[1000, 50, 0, 0, 0, 0], [1000, 50, 0, 0, 0, 0], [900, 72, 0, 0, 0, 0]])
    res = sig.failure_rate(cur, base, Params(), hours=24)
    full = sig.failure_rate(cur, base, Params(alpha=0.5), hours=24)
    for i in range(3):
        table = [[cur[i, 1], cur[i, 0] - cur[i, 1]], [base[i, 1], base[i, 0] - base[i, 1]]]
        exact = sps.fisher_exact(table, alternative="greater").pvalue
        assert full.p_value[i] == pytest.approx(exact, rel=1e-9)
        if i < 2:  # 3 % and 5 % against 5 %: at most the expected count
            assert res.p_value[i] == 1.0 and exact >= 0.5
        else:
            assert res.p_value[i] == full.p_value[i]


def test_findings_and_their_q_values_are_those_of_every_tail_computed(monkeypatch):
    # The skipped tails are all >= 0.5: BH's q-values below 0.5 come from p-values below it, whose
    # ranks they keep, so every finding, its p and q, and every residual test stay as they were.
    import dataclasses

    real = sig._rate_test

    def every_tail(cur_k, cur_n, base_k, base_n, p, hours, unit, with_p=True):
        return real(cur_k, cur_n, base_k, base_n, dataclasses.replace(p, fold_alpha=0.5), hours, unit, with_p)

    found = 0
    for seed, inj in ((2, Injection(fail_group=("faq", "m-mini"), fail_rate=0.30)), (5, None), (11, None)):
        src = sources(seed, inj=inj) if inj is not None else sources(seed)
        skipped = analyze(src, current_hours=24)

        monkeypatch.setattr(sig, "_rate_test", every_tail)
        full = analyze(src, current_hours=24)
        monkeypatch.setattr(sig, "_rate_test", real)
        assert skipped.tests == full.tests
        assert skipped.findings == full.findings
        found += len(full.findings)
    assert found  # the injected regression was found, with its folded marginals
