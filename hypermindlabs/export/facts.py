"""What one finished run contributes to the exported series (pure: rows in, deltas out).

The same functions serve the append hook (sign +1 for new facts; -1 then +1 when a late step
changes a stored run's fact) and the rebuild from raw events, so rebuilt == incremental. Values
are integers (seconds as microseconds) so sums come out exactly the same in any order.

Per finished run (its run event and all its steps):

- ``hypermind_agent_runs_total`` and ``hypermind_agent_run_duration_seconds`` by project,
  scenario, model, status; ``gen_ai_client_operation_duration_seconds`` as ``invoke_agent``;
- ``hypermind_agent_run_tokens`` per token type: the run's own counts, else the sum of its LLM
  steps' (what the API reports), real counts ``estimated="false"``, character proxies ``"true"``;
- a failed run: ``hypermind_agent_run_failures_total`` once, by its (root-cause) class and cluster.

Per step: operation duration (not policy checks), provider-reported token usage of LLM calls, tool
calls, policy checks, and a failed step once in ``hypermind_step_errors_total`` by kind and class.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson

from hypermindlabs import conventions as c
from hypermindlabs.core.record import run_tokens

__all__ = ["Deltas", "Cap", "add_run", "series_id", "scale_of", "NS_PER_S", "US_PER_S"]

NS_PER_S = 1_000_000_000
US_PER_S = 1_000_000
#: cap(label budget, raw value, sign) → the exported label value (None: leave the label off).
Cap = Callable[[str, str | None, int], str | None]
Exemplar = tuple[int, str, str, int]  # (timestamp ns, run_id, trace_id, value in stored units)
_SLOT_SUM = -1


def scale_of(spec: c.MetricSpec) -> int:
    """Stored units per exposed unit: seconds are stored as microseconds, everything else as is.

    Microseconds, not the events' nanoseconds: a series' cumulative sum is a 64-bit integer, and in
    nanoseconds it passed 2^63 after 292 runs of the longest allowed duration (366 days) under one
    label set, or ~150 days of a million one-minute runs a day, failing every later batch. In
    microseconds the horizon is 2^63 µs = 292,000 years of summed duration per series.
    """
    return US_PER_S if spec.unit == c.UNIT_SECONDS else 1


def _given_per_exposed(spec: c.MetricSpec) -> int:
    """Units of the values ``observe`` is given per exposed unit: durations come in nanoseconds."""
    return NS_PER_S if spec.unit == c.UNIT_SECONDS else 1


# Bucket bounds in the units observations are given in (ns for durations: the bucket is chosen
# before rounding to the stored unit), and given units per stored unit.
_BOUNDS: dict[str, list[int]] = {
    s.name: [round(b * _given_per_exposed(s)) for b in s.buckets] for s in c.METRICS if s.buckets
}
_PER_STORED: dict[str, int] = {s.name: _given_per_exposed(s) // scale_of(s) for s in c.METRICS}


def series_id(metric: str, labels_json: str) -> int:
    """A stable signed 63-bit id for (metric, labels): the same in every process and rebuild."""
    digest = hashlib.sha256(f"{metric}\x00{labels_json}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


Labels = tuple[tuple[str, str | None], ...]


class Deltas:
    """Changes to the view from one batch: (metric, labels) × slot → value delta, latest exemplar.

    Observations are keyed by the labels as given (a tuple of the call's pairs), interned to a
    small int per distinct label set: a key then hashes its pairs once, not at each of the three
    or four lookups an observation makes. :meth:`rows` turns each distinct label set into its
    Prometheus names and canonical JSON once, merging label sets that differ only in order or in
    labels left off (None).
    """

    def __init__(self) -> None:
        # (metric, label set, slot) → value delta; the latest exemplar of the bucket slots.
        self.values: dict[tuple[str, int, int], int] = {}
        self.exemplars: dict[tuple[str, int, int], Exemplar] = {}
        self.retracted = False
        self._label_ids: dict[Labels, int] = {}
        self._labels: list[Labels] = []

    def _label_id(self, labels: Mapping[str, str | None]) -> int:
        pairs = tuple(labels.items())
        got = self._label_ids.get(pairs)
        if got is None:
            got = self._label_ids[pairs] = len(self._labels)
            self._labels.append(pairs)
        return got

    def inc(self, spec: c.MetricSpec, labels: Mapping[str, str | None], n: int = 1) -> None:
        key = (spec.name, self._label_id(labels), 0)
        values = self.values
        values[key] = values.get(key, 0) + n
        if n < 0:
            self.retracted = True

    def observe(self, spec: c.MetricSpec, labels: Mapping[str, str | None], value: int, sign: int,
                exemplar: tuple[int, str, str] | None) -> None:  # fmt: skip
        """Add (sign +1) or retract (-1) one observation (durations in ns); exemplars only on adds.

        The bucket is chosen from the value as given; the sum and the exemplar get it in stored
        units (durations rounded to the nearest microsecond, the same for an add and its retract).
        """
        name = spec.name
        slot = bisect.bisect_left(_BOUNDS[name], value)
        per = _PER_STORED[name]
        if per != 1:
            value = (value + per // 2) // per
        lid = self._label_id(labels)
        key = (name, lid, slot)
        values = self.values
        values[key] = values.get(key, 0) + sign
        skey = (name, lid, _SLOT_SUM)
        values[skey] = values.get(skey, 0) + sign * value
        if sign < 0:
            self.retracted = True
        elif exemplar is not None:
            old = self.exemplars.get(key)
            # The newest by end time, then run_id, then value: a total order, so the same exemplar
            # whatever order runs arrive in (the view's UPSERT keeps the same one).
            if old is None or (exemplar[0], exemplar[1], value) > (old[0], old[1], old[3]):
                self.exemplars[key] = (exemplar[0], exemplar[1], exemplar[2], value)

    def rows(self) -> list[tuple[Any, ...]]:
        """``store.export_series.SERIES_COLUMNS`` tuples of every non-empty change."""
        values: dict[tuple[str, str, int], int] = {}
        exemplars: dict[tuple[str, str, int], Exemplar] = {}
        names = [_labels_json(pairs) for pairs in self._labels]
        for (metric, lid, slot), delta in self.values.items():
            key = (metric, names[lid], slot)
            values[key] = values.get(key, 0) + delta
        for (metric, lid, slot), got in self.exemplars.items():
            key = (metric, names[lid], slot)
            old = exemplars.get(key)
            if old is None or (got[0], got[1], got[3]) > (old[0], old[1], old[3]):
                exemplars[key] = got
        out = []
        ids: dict[tuple[str, str], int] = {}
        for key in values.keys() | exemplars.keys():
            delta = values.get(key, 0)
            ex = exemplars.get(key)
            if delta == 0 and ex is None:
                continue
            metric, labels, slot = key
            sid = ids.get(key[:2])
            if sid is None:
                sid = ids[key[:2]] = series_id(metric, labels)
            ex_cols = (ex[0], ex[1], ex[2], ex[3]) if ex else (None, None, None, None)
            out.append((sid, slot, metric, labels, delta, *ex_cols))
        return out


_PROM_NAMES: dict[str, str] = {}


def _labels_json(pairs: Labels) -> str:
    """The canonical label set: Prometheus names, labels left off when None, keys sorted."""
    kept = {}
    for k, v in pairs:
        if v is not None:
            name = _PROM_NAMES.get(k)
            if name is None:
                name = _PROM_NAMES[k] = c.prom_label(k)
            kept[name] = v
    return orjson.dumps(kept, option=orjson.OPT_SORT_KEYS).decode()


def provider_of(row: Mapping[str, Any]) -> str | None:
    attrs = row.get("attributes")
    if attrs and attrs != "{}":
        try:
            parsed = orjson.loads(attrs) if isinstance(attrs, str | bytes) else attrs
        except orjson.JSONDecodeError:
            parsed = {}
        if isinstance(parsed, dict):
            for key in c.PROVIDER_ATTRIBUTE_KEYS:
                value = parsed.get(key)
                if isinstance(value, str) and value:
                    return value
    model = row.get("model")
    if model:
        if model in _PROVIDER_OF_MODEL:
            return _PROVIDER_OF_MODEL[model]
        found = None
        lowered = model.lower().rsplit("/", 1)[-1]
        for prefix, provider in c.PROVIDER_BY_MODEL_PREFIX:
            if lowered.startswith(prefix):
                found = provider
                break
        if len(_PROVIDER_OF_MODEL) >= 4096:  # bounded: junk model names cannot grow it
            _PROVIDER_OF_MODEL.clear()
        _PROVIDER_OF_MODEL[model] = found
        return found
    return None


# A pure function of the model name, asked once per LLM step: memoized (a batch has few models).
_PROVIDER_OF_MODEL: dict[str, str | None] = {}


def _duration(row: Mapping[str, Any]) -> int:
    return max(int(row["end_ns"]) - int(row["start_ns"]), 0)


def add_run(acc: Deltas, run: Mapping[str, Any], children: Sequence[Mapping[str, Any]], cap: Cap, sign: int = 1,
            *, steps: Iterable[Mapping[str, Any]] | None = None) -> None:  # fmt: skip
    """Add (sign +1) or retract (-1) a finished run's run-level series from its run event and all its
    children; and add the step series of ``steps`` (default: all children) with the same sign."""
    rid, trace = run["run_id"], run["trace_id"]
    status = run["status"]
    project = cap(c.BUDGET_PROJECT, run["project"], sign)
    scenario = cap(c.BUDGET_SCENARIO, run["scenario"], sign)
    model = cap(c.BUDGET_MODEL, run["model"], sign)
    dims = {c.ATTR_PROJECT: project, c.ATTR_SCENARIO: scenario, c.ATTR_MODEL: model, c.ATTR_STATUS: status}
    ex = (int(run["end_ns"]), rid, trace)
    acc.inc(c.AGENT_RUNS, dims, sign)
    dur = _duration(run)
    acc.observe(c.AGENT_RUN_DURATION, dims, dur, sign, ex)
    failed = status == "error"
    error_type = (cap(c.BUDGET_ERROR_TYPE, run["error_type"], sign) or c.OTHER_SEMCONV) if failed else None
    provider = cap(c.BUDGET_PROVIDER, provider_of(run), sign) or c.OTHER_SEMCONV
    acc.observe(c.OPERATION_DURATION, {
        c.ATTR_OPERATION: c.OP_INVOKE_AGENT, c.ATTR_PROVIDER: provider, c.ATTR_REQUEST_MODEL: model,
        c.ATTR_ERROR_TYPE: error_type, c.ATTR_PROJECT: project,
    }, dur, sign, ex)  # fmt: skip
    tok = run_tokens(run, children)
    sides = ((c.TOKEN_INPUT, "false", tok[0]), (c.TOKEN_OUTPUT, "false", tok[1]),
             (c.TOKEN_INPUT, "true", tok[2]), (c.TOKEN_OUTPUT, "true", tok[3]))  # fmt: skip
    for token_type, estimated, n in sides:
        if n > 0:
            labels = {**dims, c.ATTR_TOKEN_TYPE: token_type, c.ATTR_ESTIMATED: estimated}
            labels.pop(c.ATTR_STATUS)
            acc.observe(c.AGENT_RUN_TOKENS, labels, n, sign, ex)
    if failed:
        acc.inc(c.FAILURES, {
            c.ATTR_FAILURE_CLASS: cap(c.BUDGET_ERROR_CLASS, run["failure_class"] or run["error_class"], sign)
            or c.UNKNOWN_ERROR_CLASS,
            c.ATTR_CLUSTER: cap(c.BUDGET_CLUSTER, run["cluster_id"], sign),
        }, sign)  # fmt: skip
    for step in children if steps is None else steps:
        add_step(acc, step, cap, sign)


def add_step(acc: Deltas, step: Mapping[str, Any], cap: Cap, sign: int = 1) -> None:
    kind, status = step["kind"], step["status"]
    failed = status == "error"
    project = cap(c.BUDGET_PROJECT, step["project"], sign)
    ex = (int(step["end_ns"]), step["run_id"], step["trace_id"])
    op = c.OPERATION_BY_KIND[kind]
    model = provider = tool = None
    if kind == "llm":
        model = cap(c.BUDGET_MODEL, step["model"], sign)
        provider = cap(c.BUDGET_PROVIDER, provider_of(step), sign) or c.OTHER_SEMCONV
    if kind in ("tool", "retrieval"):
        tool = cap(c.BUDGET_TOOL, step["tool"], sign)
    if kind != "policy":
        error_type = (cap(c.BUDGET_ERROR_TYPE, step["error_type"], sign) or c.OTHER_SEMCONV) if failed else None
        acc.observe(c.OPERATION_DURATION, {
            c.ATTR_OPERATION: op, c.ATTR_PROVIDER: provider, c.ATTR_REQUEST_MODEL: model, c.ATTR_TOOL_NAME: tool,
            c.ATTR_ERROR_TYPE: error_type, c.ATTR_PROJECT: project,
        }, _duration(step), sign, ex)  # fmt: skip
    if kind == "llm" and not step["tokens_estimated"]:
        base = {c.ATTR_OPERATION: op, c.ATTR_PROVIDER: provider, c.ATTR_REQUEST_MODEL: model, c.ATTR_PROJECT: project}
        for token_type, n in ((c.TOKEN_INPUT, step["input_tokens"]), (c.TOKEN_OUTPUT, step["output_tokens"])):
            if n is not None:
                acc.observe(c.TOKEN_USAGE, {**base, c.ATTR_TOKEN_TYPE: token_type}, int(n), sign, ex)
    if kind == "tool":
        acc.inc(c.TOOL_CALLS, {c.ATTR_TOOL: tool, c.ATTR_STATUS: status}, sign)
    elif kind == "policy":
        scenario = cap(c.BUDGET_SCENARIO, step["scenario"], sign)
        acc.inc(c.POLICY_CHECKS, {c.ATTR_PROJECT: project, c.ATTR_SCENARIO: scenario, c.ATTR_STATUS: status}, sign)
    if failed:
        error_class = cap(c.BUDGET_ERROR_CLASS, step["failure_class"] or step["error_class"], sign)
        acc.inc(c.STEP_ERRORS, {c.ATTR_KIND: kind, c.ATTR_ERROR_CLASS: error_class or c.UNKNOWN_ERROR_CLASS}, sign)
