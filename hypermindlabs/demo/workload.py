"""Deterministic demo workload: weeks of agent runs with an injected regression and a failure burst.

The generator powers ``hypermind-obs demo``, the product demo and the benchmarks. It is pure: no clock
(``end`` is passed in), no environment, one ``random.Random(seed)`` — the same spec and
``runs_per_day`` give the same events, byte for byte.

    >>> from datetime import UTC, datetime
    >>> spec = demo_spec(end=datetime(2024, 5, 15, tzinfo=UTC), days=2)
    >>> events = list(generate_events(spec, runs_per_day=50))
    >>> events[-1]["kind"] in {"run", "llm", "tool", "retrieval", "policy"}
    True

Events follow the run event contract (DESIGN §2): per run, its child events in time order, then its
``run`` event. Times deliberately mix RFC 3339 strings, epoch s/ms/µs/ns and ``duration_ms``; some
events omit ``event_id`` or the dimensions they inherit from their run; some LLM steps report only
characters. Every failing event carries the failure class it was generated as in
``attributes["demo.failure_class"]`` — ground truth for triage tests, not part of the contract.

The world it draws from is :mod:`~hypermindlabs.demo.catalogue`, the error texts
:mod:`~hypermindlabs.demo.wording`. This module stays past 600 lines on purpose: the run and step
generators share one RNG stream whose draw order *is* the byte-for-byte output, and that order is
easiest to keep (and review) in one file.
"""

from __future__ import annotations

import math
import time
from bisect import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from random import Random
from statistics import NormalDist

from hypermindlabs.demo.catalogue import (
    BURST_DAYS,
    BURST_HOUR,
    BURST_HOURS,
    BURST_TIMEOUT_P,
    BURST_TOOL,
    ENVS,
    GUARDED_TOOLS,
    HOURLY,
    LLM_FAILS,
    MODELS,
    MS_PER_H,
    POLICY_FAIL,
    PROJECTS,
    REG,
    REG_PROMPT_GROWTH,
    REG_RECOVER_P,
    REG_SCHEMA_P,
    REG_SLOWDOWN,
    RELEASES,
    RETRIEVAL_FAIL,
    SCENARIOS,
    TIERS,
    TOOL_FAILS,
    TOOLS,
    VERBOSITY,
    WEEKEND,
    H,
    fail_table,
    pick_class,
)
from hypermindlabs.demo.wording import (
    LLM_WORDING,
    policy_error,
    pydantic_missing,
    requests_read_timeout,
    retrieval_error,
    tool_error,
)
from hypermindlabs.triage import FAILURE_CLASSES as TAXONOMY_CLASSES

__all__ = ["FAILURE_CLASSES", "DemoSpec", "demo_spec", "generate_events"]

#: The failure classes the demo injects, in the taxonomy's order (never retyped: read off the
#: failure tables, with retrieval and policy steps' own classes).
FAILURE_CLASSES: tuple[str, ...] = tuple(
    c for c in TAXONOMY_CLASSES if c in {*LLM_FAILS, *TOOL_FAILS, "retrieval_failure", "policy_violation"}
)


@dataclass(frozen=True)
class DemoSpec:
    """What the demo injects, so tests and docs can assert it. Build it with :func:`demo_spec`."""

    seed: int
    start: datetime
    end: datetime
    projects: tuple[str, ...]
    models: tuple[str, ...]
    tools: tuple[str, ...]
    scenarios: tuple[str, ...]
    regression_release: str
    regression_at: datetime
    regression_model: str
    regression_scenario: str
    burst_start: datetime
    burst_end: datetime
    burst_tool: str
    #: (version, rolled out at), oldest first; the first one is live from ``start``.
    releases: tuple[tuple[str, datetime], ...]
    regression_tool: str
    regression_failure_class: str
    #: every occurrence of the burst; the first is (burst_start, burst_end).
    burst_windows: tuple[tuple[datetime, datetime], ...]
    envs: tuple[str, ...]
    failure_classes: tuple[str, ...]

    def release_at(self, when: datetime) -> str:
        """The release live at ``when``."""
        live = self.releases[0][0]
        for version, at in self.releases:
            if at <= when:
                live = version
        return live

    def in_burst(self, when: datetime) -> bool:
        return any(s <= when < e for s, e in self.burst_windows)


def demo_spec(*, seed: int = 7, end: datetime, days: int = 14) -> DemoSpec:
    """Describe a demo workload covering ``days`` days up to ``end`` (timezone-aware).

    The bad release rolls out 26 h before ``end`` (a third of the window for short windows), so the
    default "last 24 h vs the 7 days before" comparison sees it; the burst recurs daily on the last
    three days.
    """
    if end.tzinfo is None:
        raise ValueError("end: must be timezone-aware (e.g. datetime.now(UTC))")
    if days < 1:
        raise ValueError(f"days: must be >= 1, got {days}")
    end = end.astimezone(UTC)
    start = end - timedelta(days=days)
    span = end - start
    regression_at = _floor_hour(end - min(timedelta(hours=26), span / 3))
    before = regression_at - start
    releases = (
        (RELEASES[0], start),
        (RELEASES[1], _floor_hour(start + before * 0.35)),
        (RELEASES[2], _floor_hour(start + before * 0.7)),
        (RELEASES[3], regression_at),
    )
    day = (end - timedelta(hours=BURST_HOUR + BURST_HOURS)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    windows = []
    for back in range(BURST_DAYS - 1, -1, -1):
        b_start = day - timedelta(days=back) + timedelta(hours=BURST_HOUR)
        if b_start >= start:
            windows.append((b_start, b_start + timedelta(hours=BURST_HOURS)))
    if not windows:  # a window too short for the daily slot: put one burst in its middle
        mid = _floor_hour(start + span / 2)
        windows.append((mid, mid + H))
    return DemoSpec(
        seed=seed,
        start=start,
        end=end,
        projects=tuple(PROJECTS),
        models=tuple(MODELS),
        tools=tuple(TOOLS),
        scenarios=tuple(SCENARIOS),
        regression_release=RELEASES[3],
        regression_at=regression_at,
        regression_model=REG["model"],
        regression_scenario=REG["scenario"],
        burst_start=windows[0][0],
        burst_end=windows[0][1],
        burst_tool=BURST_TOOL,
        releases=releases,
        regression_tool=REG["tool"],
        regression_failure_class="tool_schema_mismatch",
        burst_windows=tuple(windows),
        envs=tuple(e for e, _ in ENVS),
        failure_classes=FAILURE_CLASSES,
    )


def generate_events(spec: DemoSpec, *, runs_per_day: int = 1500) -> Iterator[dict]:
    """Yield the workload's events in run start order: each run's children, then its run event.

    ``runs_per_day`` is the mean over a week; weekdays get more, weekends fewer. Runs that would
    still be in flight at ``spec.end`` are left out, so no event lies in the future.
    """
    if runs_per_day < 1:
        raise ValueError(f"runs_per_day: must be >= 1, got {runs_per_day}")
    yield from _Workload(spec, Random(spec.seed)).events(runs_per_day)


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _cumulative(weights: dict[str, float] | tuple[tuple[str, float], ...]):
    items = list(weights.items()) if isinstance(weights, dict) else list(weights)
    total, cum = 0.0, []
    for _, w in items:
        total += w
        cum.append(total)
    return tuple(k for k, _ in items), [c / total for c in cum]


_NOISE_STEPS = 4096


@cache
def _lognormal_quantiles(sigma: float) -> tuple[float, ...]:
    normal = NormalDist()
    return tuple(math.exp(sigma * normal.inv_cdf((i + 0.5) / _NOISE_STEPS)) for i in range(_NOISE_STEPS))


@cache
def _seconds_z() -> tuple[str, ...]:
    """ "SS.mmmZ" for every millisecond of a minute: RFC 3339 formatting is then one concatenation."""
    return tuple(f"{ms // 1000:02d}.{ms % 1000:03d}Z" for ms in range(60_000))


# Time forms cycle with a prime period so they spread over kinds and step positions.
_RFC, _EPOCH_MS, _EPOCH_S, _DURATION, _EPOCH_US, _EPOCH_NS = range(6)
_FORMS = (
    _RFC,
    _EPOCH_MS,
    _RFC,
    _EPOCH_S,
    _EPOCH_MS,
    _RFC,
    _DURATION,
    _EPOCH_S,
    _RFC,
    _EPOCH_MS,
    _EPOCH_US,
    _RFC,
    _EPOCH_S,
    _EPOCH_MS,
    _RFC,
    _DURATION,
    _EPOCH_NS,
)


class _Workload:
    """One pass over the window. Hot paths bind rng methods and tables to attributes once."""

    def __init__(self, spec: DemoSpec, rng: Random) -> None:
        self.spec = spec
        self.rng = rng
        self.random = rng.random
        self.gauss = rng.gauss
        # Log-normal multipliers (median 1) drawn by inverse CDF, `q[int(random() * _NOISE_STEPS)]`:
        # ~10x cheaper than gauss + exp, and this runs a few times per event.
        self.q20, self.q25, self.q30, self.q40, self.q50, self.q60 = (
            _lognormal_quantiles(sigma) for sigma in (0.2, 0.25, 0.3, 0.4, 0.5, 0.6)
        )
        self.bits = rng.getrandbits
        self.n = 0
        self.minutes: dict[int, str] = {}
        self.seconds_z = _seconds_z()
        self.projects = _cumulative({p: v[0] for p, v in PROJECTS.items()})
        self.project_scenarios = {p: _cumulative(v[1]) for p, v in PROJECTS.items()}
        self.project_models = {p: _cumulative(v[2]) for p, v in PROJECTS.items()}
        self.scenario_tools = {s: _cumulative(v[4]) for s, v in SCENARIOS.items()}
        self.envs = _cumulative(ENVS)
        self.tiers = _cumulative(TIERS)
        self.releases = [(_ms(at), v) for v, at in spec.releases]
        self.reg_ms = _ms(spec.regression_at)
        self.bursts = [(_ms(s), _ms(e)) for s, e in spec.burst_windows]
        self.llm_fails = {m: fail_table(LLM_FAILS, m) for m in MODELS}
        self.tool_fails = {m: fail_table(TOOL_FAILS, m) for m in MODELS}

    def pick(self, table) -> str:
        keys, cum = table
        return keys[bisect(cum, self.random())]

    # ---- time ------------------------------------------------------------------------------------

    def minute_prefix(self, minute: int) -> str:
        prefix = self.minutes[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
        return prefix

    def rfc3339(self, ms: int) -> str:
        minute, rest = divmod(ms, 60_000)
        return (self.minutes.get(minute) or self.minute_prefix(minute)) + self.seconds_z[rest]

    def put_times(self, ev: dict, start: int, end: int) -> None:
        form = _FORMS[self.n % 17]
        if form == _RFC:
            minutes, seconds_z = self.minutes, self.seconds_z
            m, rest = divmod(start, 60_000)
            ev["start_time"] = (minutes.get(m) or self.minute_prefix(m)) + seconds_z[rest]
            m, rest = divmod(end, 60_000)
            ev["end_time"] = (minutes.get(m) or self.minute_prefix(m)) + seconds_z[rest]
        elif form == _EPOCH_MS:
            ev["start_time"] = start
            ev["end_time"] = end
        elif form == _EPOCH_S:
            ev["start_time"] = start / 1000
            ev["end_time"] = end / 1000
        elif form == _DURATION:
            ev["start_time"] = self.rfc3339(start)
            ev["duration_ms"] = end - start
        elif form == _EPOCH_US:
            ev["start_time"] = start * 1000
            ev["end_time"] = end * 1000
        else:
            ev["start_time"] = start * 1_000_000
            ev["end_time"] = end * 1_000_000

    def run_starts(self, runs_per_day: int) -> Iterator[int]:
        start_ms, end_ms = _ms(self.spec.start), _ms(self.spec.end)
        week = sum(HOURLY) * (5 + 2 * WEEKEND)
        per_weight = runs_per_day * 7 / week
        hour = _ms(_floor_hour(self.spec.start))
        while hour < end_ms:
            t = datetime.fromtimestamp(hour / 1000, UTC)
            w = HOURLY[t.hour] * (WEEKEND if t.weekday() >= 5 else 1.0)
            lo, hi = max(hour, start_ms), min(hour + MS_PER_H, end_ms)
            expected = per_weight * w * (hi - lo) / MS_PER_H * math.exp(self.gauss(0.0, 0.08))
            count = int(expected + self.random())
            span = hi - lo
            yield from sorted(lo + int(self.random() * span) for _ in range(count))
            hour += MS_PER_H

    # ---- runs ------------------------------------------------------------------------------------

    def events(self, runs_per_day: int) -> Iterator[dict]:
        end_ms = _ms(self.spec.end)
        releases = self.releases
        for t0 in self.run_starts(runs_per_day):
            release = releases[0][1]
            for at, version in releases:
                if at <= t0:
                    release = version
            run, t_end = self.run(t0, release)
            if t_end <= end_ms:  # runs still in flight at `end` are drawn (for determinism), not shown
                yield from run

    def run(self, t0: int, release: str) -> tuple[list[dict], int]:
        random, bits = self.random, self.bits
        project = self.pick(self.projects)
        scenario = self.pick(self.project_scenarios[project])
        model = self.pick(self.project_models[project])
        env = self.pick(self.envs)
        tier = self.pick(self.tiers)
        index, p_retr, p_in, p_out, _, (lo, hi), sys_tokens = SCENARIOS[scenario]
        run_id = f"run-{bits(96):024x}"
        trace_id = f"{bits(128):032x}"
        run_span = f"{bits(64):016x}"
        regressed = t0 >= self.reg_ms and model == REG["model"] and scenario == REG["scenario"]
        chars_only = random() < (0.6 if model == "llama-3.1-70b" else 0.02)

        ctx = _RunContext(
            self, run_id, trace_id, run_span, project, scenario, model, env, release, regressed, chars_only
        )
        ctx.prompt = float(sys_tokens)
        steps: list[tuple[Callable[[str, int], tuple[int, tuple[dict, str] | None]], str]] = []
        if random() < p_in:
            steps.append((ctx.policy, "input_guard"))
        if index is not None and random() < p_retr:
            steps.append((ctx.retrieval, index))
        calls = lo + int(random() * (hi - lo + 1))
        steps.append((ctx.llm, "final" if calls == 0 else "plan"))
        tools = self.scenario_tools[scenario]
        for k in range(calls):
            tool = self.pick(tools)
            if tool in GUARDED_TOOLS:
                steps.append((ctx.policy, "tool_policy:" + tool))
            steps.append((ctx.tool, tool))
            steps.append((ctx.llm, "final" if k == calls - 1 else "after_tool"))
        if random() < p_out:
            steps.append((ctx.policy, "output_guard"))

        t = t0 + 5 + int(random() * 35)
        error: dict | None = None
        failure_class = ""
        for step, arg in steps:
            t, failed = step(arg, t)
            if failed is not None:
                error, failure_class = failed
                break
            t += 2 + int(random() * 20)
        t_end = t + 3 + int(random() * 15)

        ev: dict = {
            "event_id": f"{run_id}.0",
            "run_id": run_id,
            "trace_id": trace_id,
            "span_id": run_span,
            "kind": "run",
            "name": "invoke_agent " + scenario,
            "status": "ok" if error is None else "error",
            "project": project,
            "scenario": scenario,
            "model": model,
            "tags": {"env": env, "release": release, "tier": tier},
            "usage": (
                {"input_chars": ctx.in_units, "output_chars": ctx.out_units}
                if chars_only
                else {"input_tokens": ctx.in_units, "output_tokens": ctx.out_units}
            ),
            "attributes": {"tool_calls": ctx.tool_calls, "llm_calls": ctx.llm_calls},
        }
        if error is not None:
            ev["error"] = dict(error)
            ev["attributes"]["demo.failure_class"] = failure_class
        n = self.n = self.n + 1
        if n % 13 == 5:
            del ev["event_id"]
        self.put_times(ev, t0, t_end)
        ctx.events.append(ev)
        return ctx.events, t_end


class _RunContext:
    """Builds one run's child events; tracks its usage totals and call counts."""

    __slots__ = (
        "w",
        "run_id",
        "trace_id",
        "run_span",
        "project",
        "scenario",
        "model",
        "env",
        "release",
        "regressed",
        "chars_only",
        "prompt",
        "events",
        "in_units",
        "out_units",
        "tool_calls",
        "llm_calls",
        "i",
    )

    def __init__(
        self,
        w: _Workload,
        run_id: str,
        trace_id: str,
        run_span: str,
        project: str,
        scenario: str,
        model: str,
        env: str,
        release: str,
        regressed: bool,
        chars_only: bool,
    ) -> None:
        self.w = w
        self.run_id, self.trace_id, self.run_span = run_id, trace_id, run_span
        self.project, self.scenario, self.model = project, scenario, model
        self.env, self.release = env, release
        self.regressed, self.chars_only = regressed, chars_only
        self.prompt = 0.0
        self.events: list[dict] = []
        self.in_units = self.out_units = self.tool_calls = self.llm_calls = 0
        self.i = 0

    def event(
        self,
        kind: str,
        name: str,
        start: int,
        end: int,
        error: tuple[str, str] | None,
        failure_class: str = "",
        tool: str = "",
    ) -> dict:
        w = self.w
        i = self.i = self.i + 1
        n = w.n = w.n + 1
        run_id = self.run_id
        # One literal is cheaper than a dozen stores; times are appended last.
        ev: dict = {
            "event_id": f"{run_id}.{i}",
            "run_id": run_id,
            "trace_id": self.trace_id,
            "span_id": f"{w.bits(64):016x}",
            "parent_span_id": self.run_span,
            "kind": kind,
            "name": name,
            "status": "ok" if error is None else "error",
            "project": self.project,
            "scenario": self.scenario,
            "tags": {"env": self.env, "release": self.release},
        }
        if kind == "llm":
            ev["model"] = self.model
        elif tool:
            ev["tool"] = tool
        if n % 11 == 4:  # this one inherits project/scenario (and model) from its run
            del ev["project"], ev["scenario"]
            ev.pop("model", None)
        if n % 13 == 5:
            del ev["event_id"]
        if error is not None:
            ev["error"] = {"type": error[0], "message": error[1]}
            ev["attributes"] = {"demo.failure_class": failure_class}
        w.put_times(ev, start, end)
        self.events.append(ev)
        return ev

    def llm(self, arg: str, t: int) -> tuple[int, tuple[dict, str] | None]:
        w = self.w
        random, q20, q25, q30, q50 = w.random, w.q20, w.q25, w.q30, w.q50
        model = self.model
        _, ttft, per_tok, window, _ = MODELS[model]
        in_factor, out_factor = VERBOSITY[model]
        if self.regressed:
            in_factor *= REG_PROMPT_GROWTH
        while True:
            self.llm_calls += 1
            in_tok = int(self.prompt * in_factor * q25[int(random() * _NOISE_STEPS)])
            out_tok = (
                int((280 if arg == "final" else 90) * out_factor * q50[int(random() * _NOISE_STEPS)]) + 5
            )
            ms = (
                ttft * q30[int(random() * _NOISE_STEPS)]
                + out_tok * per_tok * q20[int(random() * _NOISE_STEPS)]
            )
            if random() < 0.02:  # provider hiccup: the heavy tail
                ms *= min(15.0, w.rng.paretovariate(1.6))
            if self.regressed:
                ms *= REG_SLOWDOWN
            r = random()
            total, table = w.llm_fails[model]
            if r >= total:
                end = t + int(ms)
                ev = self.event("llm", "chat " + model, t, end, None)
                self.add_usage(ev, in_tok, out_tok)
                self.prompt += out_tok + 250 + 250 * random()  # the reply and the next tool result
                return end, None
            cls, recover = pick_class(table, r)
            err = LLM_WORDING[cls][MODELS[model][0]](w.rng, model, window)
            end = t + int(ms * (0.05 + 0.2 * random()) if cls != "upstream_error" else ms * random())
            ev = self.event("llm", "chat " + model, t, end, err, cls)
            if random() >= recover:
                return end, (ev["error"], cls)
            t = end + int(500 + 4000 * random())  # back off, then retry

    def add_usage(self, ev: dict, in_tok: int, out_tok: int) -> None:
        if self.chars_only:
            in_u, out_u = int(in_tok * 4.1), int(out_tok * 3.9)
            ev["usage"] = {"input_chars": in_u, "output_chars": out_u}
        else:
            in_u, out_u = in_tok, out_tok
            ev["usage"] = {"input_tokens": in_u, "output_tokens": out_u}
        self.in_units += in_u
        self.out_units += out_u

    def tool(self, tool: str, t: int) -> tuple[int, tuple[dict, str] | None]:
        w = self.w
        random = w.random
        median = TOOLS[tool][0]
        total, table = w.tool_fails[self.model]
        in_burst = tool == BURST_TOOL and any(s <= t < e for s, e in w.bursts)
        name = "execute_tool " + tool
        retried = False
        while True:
            self.tool_calls += 1
            ms = median * w.q60[int(random() * _NOISE_STEPS)]
            if random() < 0.02:
                ms *= min(20.0, w.rng.paretovariate(1.4))
            if self.regressed:
                ms *= REG_SLOWDOWN
            cls, recover, timeout = "", 0.0, 0
            if self.regressed and tool == REG["tool"] and not retried and random() < REG_SCHEMA_P:
                cls, recover = "tool_schema_mismatch", REG_RECOVER_P
                err = pydantic_missing(w.rng, tool)
            elif in_burst and random() < BURST_TIMEOUT_P:
                cls, recover, timeout = "tool_timeout", 0.25, 30
                err = requests_read_timeout(tool, timeout)
            else:
                r = random()
                if r < total:
                    cls, recover = pick_class(table, r)
                    timeout = w.rng.choice((10, 30, 60))
                    err = tool_error(cls, w.rng, tool, timeout)
            if not cls:
                end = t + int(ms)
                self.event("tool", name, t, end, None, tool=tool)
                return end, None
            if cls == "tool_timeout":
                end = t + timeout * 1000 + int(random() * 40)
            else:
                end = t + int(ms * (0.1 + 0.4 * random()))
            ev = self.event("tool", name, t, end, err, cls, tool)
            if random() >= recover:
                return end, (ev["error"], cls)
            retried = True
            t = end + 5 + int(random() * 30)
            if cls == "tool_schema_mismatch":  # the model rewrites the arguments before retrying
                t, failed = self.llm("after_tool", t)
                if failed is not None:
                    return t, failed
                t += 3

    def retrieval(self, index: str, t: int) -> tuple[int, tuple[dict, str] | None]:
        w = self.w
        random = w.random
        while True:
            ms = 120 * w.q50[int(random() * _NOISE_STEPS)]
            if random() < 0.01:
                ms *= min(20.0, w.rng.paretovariate(1.5))
            end = t + int(ms) + 1
            if random() >= RETRIEVAL_FAIL[0]:
                ev = self.event("retrieval", "retrieval " + index, t, end, None)
                ev["attributes"] = {"index": index, "top_k": 8, "documents": 3 + int(random() * 6)}
                self.prompt += 900 + 1500 * random()
                return end, None
            ev = self.event(
                "retrieval", "retrieval " + index, t, end, retrieval_error(w.rng, index), "retrieval_failure"
            )
            if random() >= RETRIEVAL_FAIL[1]:
                return end, (ev["error"], "retrieval_failure")
            t = end + 10 + int(random() * 200)

    def policy(self, check: str, t: int) -> tuple[int, tuple[dict, str] | None]:
        w = self.w
        end = t + 1 + int(40 * w.q40[int(w.random() * _NOISE_STEPS)])
        guard, _, tool = check.partition(":")
        if w.random() >= POLICY_FAIL[0]:
            self.event("policy", "hypermind.guardrail " + guard, t, end, None)
            return end, None
        ev = self.event(
            "policy",
            "hypermind.guardrail " + guard,
            t,
            end,
            policy_error(w.rng, guard, tool),
            "policy_violation",
        )
        return end, (ev["error"], "policy_violation")
