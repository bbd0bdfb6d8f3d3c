"""Label caps: first come under budget, the rest fold into __other__, stable across processes."""

from __future__ import annotations

import threading
import tracemalloc

import pytest
from sqlalchemy import create_engine, text

from hypermindlabs import conventions as c
from hypermindlabs.config import ConfigError, Settings
from hypermindlabs.export.cardinality import Cardinality, parse_budgets, sanitize_label_value
from hypermindlabs.export.telemetry import Telemetry
from hypermindlabs.store.label_admissions import LabelAdmissions
from hypermindlabs.store.schema import label_admissions
from tests.test_telemetry import T0, stored_row


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        (None, {}),
        ("", {}),
        ("model=7", {"model": 7}),
        (" model = 7 , tool=900 ,", {"model": 7, "tool": 900}),
    ],
    ids=["no setting keeps the defaults", "an empty setting keeps the defaults", "one label is overridden",
         "spaces and a trailing comma are fine"],
)  # fmt: skip
def test_budgets_are_the_defaults_with_the_configured_overrides(spec, expected):
    assert parse_budgets(spec) == {**c.DEFAULT_LABEL_BUDGETS, **expected}


@pytest.mark.parametrize(
    "spec",
    ["model", "colour=3", "model=many", "model=0", "model=-1", "model=100001"],
    ids=["a label without a count", "a label that is not capped", "a count that is not a number",
         "a zero budget", "a negative budget", "an absurd budget"],
)  # fmt: skip
def test_invalid_budgets_fail_naming_the_setting(spec):
    with pytest.raises(ConfigError, match=c.LABEL_BUDGETS_ENV):
        parse_budgets(spec)


# -- untrusted values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ('gpt-4o "mini"\\', 'gpt-4o "mini"\\'),
        ("model\nname", "model\nname".replace("\n", "\ufffd")),
        ("a\x00b\x7fc", "a\ufffdb\ufffdc"),
        ("bad \ud800 surrogate", "bad ? surrogate"),
        ("ünïcødé 模型", "ünïcødé 模型"),
    ],
    ids=["quotes and backslashes stay data (the exposition escapes them)", "newlines are replaced",
         "other control characters are replaced", "lone surrogates become valid UTF-8",
         "unicode stays as it is"],
)  # fmt: skip
def test_label_values_are_kept_as_data_minus_control_characters(raw, expected):
    assert sanitize_label_value(raw) == expected


def test_long_values_are_cut_to_the_cap_and_stay_distinct_and_stable():
    a, b = "m" * 300 + "a", "m" * 300 + "b"
    ca, cb = sanitize_label_value(a), sanitize_label_value(b)
    assert len(ca) == len(cb) == c.MAX_LABEL_VALUE_CHARS
    assert ca != cb and ca == sanitize_label_value(a) and ca.startswith("m" * 100)


# -- admission ---------------------------------------------------------------------------------


def test_values_are_admitted_first_come_until_the_budget_and_the_rest_fold_and_are_counted():
    caps = Cardinality({"model": 2, "tool": 1})
    got = [caps.cap("model", m) for m in ("a", "b", "c", "a", "d", "b")]
    assert got == ["a", "b", c.OVERFLOW_VALUE, "a", c.OVERFLOW_VALUE, "b"]
    assert caps.cap("tool", "t") == "t" and caps.cap("tool", "u") == c.OVERFLOW_VALUE
    assert caps.folds() == {"model": 2, "tool": 1}
    assert caps.admitted("model") == {"a", "b"}


@pytest.mark.parametrize("value", [None, ""], ids=["no value", "an empty value"])
def test_a_missing_value_leaves_the_label_off_and_uses_no_budget(value):
    caps = Cardinality({"model": 1})
    assert caps.cap("model", value) is None
    assert caps.cap("model", "a") == "a"


def test_a_literal_other_value_joins_the_fold_without_using_the_budget_or_counting_as_a_fold():
    caps = Cardinality({"model": 1})
    assert caps.cap("model", c.OVERFLOW_VALUE) == c.OVERFLOW_VALUE
    assert caps.cap("model", "a") == "a" and caps.folds()["model"] == 0


def test_variants_of_an_admitted_value_needing_sanitizing_share_it_without_growing_the_cache():
    caps = Cardinality({"model": 5})
    assert {caps.cap("model", "m" + chr(i)) for i in range(1, 9)} == {"m\ufffd"}
    assert len(caps._cache["model"]) == 0 and caps.admitted("model") == {"m\ufffd"}


def model_row(i: int, model: str, kind: str = "run"):
    failed = i % 10 == 0
    return stored_row(event_id=f"e{i}", run_id=f"r{i}", trace_id=f"{i + 1:032x}", span_id=f"{i + 1:016x}",
                      kind=kind, model=model, start_ns=T0 + i, end_ns=T0 + i + 10**8,
                      status="error" if failed else "ok", error_type="Boom" if failed else None)  # fmt: skip


def test_a_hundred_thousand_distinct_models_stay_within_budget_with_folds_counted_and_totals_exact():
    tel = Telemetry.from_settings(Settings())
    budget = c.DEFAULT_LABEL_BUDGETS["model"]
    n, batch = 100_000, 2_000
    # Every 10th event is a run, the others model calls: every model name is new.
    rows = (model_row(i, f"model-{i:06d}", "run" if i % 10 == 3 else "llm") for i in range(n))

    def record(count: int) -> None:
        tel.record_rows([next(rows) for _ in range(count)])

    for _ in range(20_000 // batch):
        record(batch)
    tracemalloc.start()
    try:
        record(batch)
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(16_000 // batch):
            record(batch)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    for _ in range(62_000 // batch):
        record(batch)
    # Once the budget is full nothing more is kept per value: 16,000 more folded events leave
    # memory flat (a little slack for interpreter noise).
    assert after - before < 32 * 1024

    data = tel.collect()
    assert data is not None
    by_name = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    runs = n // 10
    for spec, label, events in (
        (c.AGENT_RUNS, c.ATTR_MODEL, runs),
        (c.AGENT_RUN_DURATION, c.ATTR_MODEL, runs),
        (c.OPERATION_DURATION, c.ATTR_REQUEST_MODEL, n),
    ):
        pts = by_name[spec.name].data.data_points
        models = {p.attributes[label] for p in pts}
        assert c.OVERFLOW_VALUE in models and len(models) <= budget + 1
        assert sum(p.count if hasattr(p, "bucket_counts") else p.value for p in pts) == events
        assert not any(c.SDK_OVERFLOW_ATTR in p.attributes for p in pts)
    ops = by_name[c.OPERATION_DURATION.name].data.data_points
    assert len({p.attributes[c.ATTR_REQUEST_MODEL] for p in ops}) == budget + 1
    assert sum(p.count for p in ops if p.attributes[c.ATTR_REQUEST_MODEL] == c.OVERFLOW_VALUE) == n - budget
    folds = {p.attributes[c.ATTR_LABEL]: p.value for p in by_name[c.LABEL_OVERFLOW.name].data.data_points}
    assert folds["model"] == n - budget and folds["project"] == 0
    assert len(tel.caps._cache["model"]) == budget


# -- shared, persistent admission -------------------------------------------------------------------


def test_the_admitted_set_is_the_same_after_a_restart_and_in_another_process(make_store):
    first = make_store()
    a = Cardinality({"model": 2}, admissions=first.label_admissions)
    assert [a.cap("model", m) for m in ("x", "y", "z")] == ["x", "y", c.OVERFLOW_VALUE]
    other_process = make_store()  # another engine (connection pool) on the same database
    b = Cardinality({"model": 2}, admissions=other_process.label_admissions)
    assert b.admitted("model") == {"x", "y"}
    assert [b.cap("model", m) for m in ("z", "y", "w", "x")] == [c.OVERFLOW_VALUE, "y", c.OVERFLOW_VALUE, "x"]
    restarted = Cardinality({"model": 2}, admissions=first.label_admissions)
    assert restarted.admitted("model") == {"x", "y"}


def test_two_processes_racing_for_the_last_places_agree_and_never_exceed_the_budget(make_store):
    budget = 5
    stores = [make_store() for _ in range(2)]
    caps = [Cardinality({"tool": budget}, admissions=s.label_admissions) for s in stores]
    values = [f"tool-{i}" for i in range(40)]
    results: list[dict[str, str | None]] = [{}, {}]
    barrier = threading.Barrier(4)

    def worker(k: int, part: list[str]) -> None:
        barrier.wait()
        for v in part:
            results[k % 2][v] = caps[k % 2].cap("tool", v)

    threads = [threading.Thread(target=worker, args=(k, values[k::4])) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with stores[0].engine.connect() as conn:
        stored = set(conn.execute(text("SELECT value FROM label_admissions WHERE label = 'tool'")).scalars())
    assert len(stored) == budget
    for k in (0, 1):
        admitted = {v for v, got in results[k].items() if got == v}
        assert admitted <= stored
        assert all(got in (v, c.OVERFLOW_VALUE) for v, got in results[k].items())
    # Afterwards both resolve every value the same way, from the shared table.
    assert [caps[0].cap("tool", v) for v in values] == [caps[1].cap("tool", v) for v in values]
    assert caps[0].admitted("tool") == caps[1].admitted("tool") == stored


def test_telemetry_instances_on_one_database_export_the_same_admitted_values(make_store):
    settings = Settings(label_budgets="model=3")
    one = Telemetry.from_settings(settings, admissions=make_store().label_admissions)
    one.record_rows([model_row(i, f"m{i}") for i in range(5)])
    two = Telemetry.from_settings(settings, admissions=make_store().label_admissions)
    two.record_rows([model_row(i, f"m{i}") for i in range(5, 10)] + [model_row(10, "m1")])
    assert one.caps.admitted("model") == two.caps.admitted("model") == {"m0", "m1", "m2"}
    assert two.caps.folds()["model"] == 5


def test_when_the_database_fails_new_values_fold_and_are_counted_and_admission_resumes_later(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'no-table.db'}")  # label_admissions missing
    clock = Clock()
    caps = Cardinality({"model": 3}, admissions=LabelAdmissions(engine), monotonic=clock, retry_after_s=30)
    assert caps.cap("model", "a") == c.OVERFLOW_VALUE
    assert caps.cap("model", "b") == c.OVERFLOW_VALUE  # within the pause: not even tried
    assert caps.folds()["model"] == 2
    label_admissions.create(engine)
    clock.now = 31.0
    assert caps.cap("model", "a") == "a"
    assert caps.folds()["model"] == 2


def test_an_unreachable_database_at_start_up_is_survived(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    caps = Cardinality({"model": 3}, admissions=LabelAdmissions(engine))
    assert caps.cap("model", "a") == c.OVERFLOW_VALUE and caps.folds()["model"] == 1
