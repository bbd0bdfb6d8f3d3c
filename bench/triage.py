"""Throughput of failure triage (classify + fingerprint) on a realistic mix of failures.

    .venv/bin/python bench/triage.py [--failures 100000] [--repeat 3] [--seed 7]

The mix draws messages from the labelled corpus (tests/data/triage_corpus.jsonl) with the class
weights below, and re-draws every number so each failure is distinct, as in a live stream.
Messages without any number get a request id appended, so nothing repeats.

- cold: every failure distinct and the module's memos cleared before each pass: the memo on whole
  calls never hits; the token memo, the digit-mask memos (template, decision) and the record memo
  (by class, template and subject) warm up within the pass as they would in a long-running process;
- warm: a working set of 500 distinct failures replayed, as during an outage burst.

Figures are failures per second on one core (the bench is single-threaded): wall clock best of
``--repeat`` passes, and the same from process CPU time, which a noisy shared machine distorts less.
Goal: >= 50,000 failures/s per core, cold.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hypermindlabs.triage import classify as triage_classify
from hypermindlabs.triage import normalize as triage_normalize
from hypermindlabs.triage.classify import ALGORITHM_VERSION, classify_failure, normalize_message

CORPUS_PATH = Path(__file__).resolve().parent.parent / "tests" / "data" / "triage_corpus.jsonl"
GOAL_PER_SECOND = 50_000
FIELDS = ("kind", "error_type", "error_message", "error_class", "tool", "model")
# Relative frequency of each class in the stream (an assumption: provider limits, outages and
# timeouts dominate real agent failures; policy, auth and loop limits are rarer).
MIX = {
    "rate_limit": 18,
    "upstream_error": 14,
    "tool_timeout": 14,
    "tool_schema_mismatch": 12,
    "retrieval_failure": 10,
    "llm_timeout": 6,
    "tool_execution_error": 6,
    "policy_violation": 5,
    "context_length_exceeded": 5,
    "invalid_request": 4,
    "authentication": 2,
    "iteration_limit": 2,
    "unknown": 2,
}
_DIGITS = re.compile(r"\d+")

Failure = dict[str, Any]


def make_failures(count: int, seed: int) -> list[Failure]:
    rng = random.Random(seed)
    by_class: dict[str, list[Failure]] = {}
    with CORPUS_PATH.open(encoding="utf-8") as handle:
        for line in handle:
            entry = json.loads(line)
            by_class.setdefault(entry["expected"], []).append({field: entry.get(field) for field in FIELDS})
    classes = [name for name in MIX if name in by_class]
    weights = [MIX[name] for name in classes]
    failures: list[Failure] = []
    seen: set[tuple[Any, ...]] = set()
    while len(failures) < count:
        base = rng.choice(by_class[rng.choices(classes, weights)[0]])
        message = base["error_message"] or ""
        if _DIGITS.search(message):
            message = _DIGITS.sub(lambda m: str(rng.randrange(10 ** len(m.group()))), message)
        else:
            message = f"{message} (request id: req_{rng.getrandbits(48):012x})"
        failure = {**base, "error_message": message}
        key = tuple(failure[field] for field in FIELDS)
        if key not in seen:
            seen.add(key)
            failures.append(failure)
    return failures


def _reset_memos() -> None:
    triage_classify._classify_memo.cache_clear()  # bench only: measure the path a new failure takes
    triage_classify._DECISION_MEMO.clear()
    triage_classify._FAILURE_MEMO.clear()
    triage_normalize._TOKEN_MEMO.clear()
    triage_normalize._TEMPLATE_MEMO.clear()


def measure(work: Callable[[], None], count: int, repeat: int, *, cold: bool) -> tuple[float, float, float]:
    """(best wall rate, median wall rate, best CPU-time rate) in items per second."""
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(repeat):
        if cold:
            _reset_memos()
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        work()
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.process_time() - cpu_start)
    return count / min(wall), count / statistics.median(wall), count / min(cpu)


def classify_all(failures: Sequence[Failure]) -> Callable[[], None]:
    def work() -> None:
        for failure in failures:
            classify_failure(**failure)

    return work


def normalize_all(messages: Sequence[str]) -> Callable[[], None]:
    def work() -> None:
        for message in messages:
            normalize_message(message)

    return work


def reference_microseconds() -> float:
    """A fixed pure-Python workload, to compare machines: sum(range(1000)), best of 200."""
    best = float("inf")
    for _ in range(200):
        start = time.perf_counter()
        sum(range(1000))
        best = min(best, time.perf_counter() - start)
    return best * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--failures", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args(argv)

    failures = make_failures(arguments.failures, arguments.seed)
    working_set = failures[:500]
    burst = [working_set[index % len(working_set)] for index in range(arguments.failures)]
    messages = [failure["error_message"] for failure in failures]
    mean_length = statistics.fmean(len(message) for message in messages)

    print(
        f"failure triage bench: ALGORITHM_VERSION {ALGORITHM_VERSION}, Python {platform.python_version()}, "
        f"{len(failures):,} failures (mean message {mean_length:.0f} chars), one core"
    )
    rows = [
        ("cold  classify + fingerprint, all distinct", classify_all(failures), True),
        ("warm  classify + fingerprint, 500 repeating", classify_all(burst), False),
        ("cold  normalize_message only", normalize_all(messages), True),
    ]
    cold_cpu = 0.0
    for title, work, cold in rows:
        if not cold:
            work()  # fill the memos once
        best, median, cpu = measure(work, len(failures), arguments.repeat, cold=cold)
        print(f"{title:<45} {best:>9,.0f}/s  (median {median:,.0f}/s, by CPU time {cpu:,.0f}/s)")
        if title.startswith("cold  classify"):
            cold_cpu = cpu
    print(f"reference: sum(range(1000)) takes {reference_microseconds():.1f} µs on this machine")
    verdict = "met" if cold_cpu >= GOAL_PER_SECOND else "NOT met"
    print(f"goal >= {GOAL_PER_SECOND:,}/s per core, cold (by CPU time): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
