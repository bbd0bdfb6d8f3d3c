"""Failure triage: classification, normalization, stable cluster ids, the golden file and trends.

The golden file pins every corpus entry's class, template and cluster id. After a deliberate change:

    .venv/bin/python -m tests.test_failure_triage --regenerate

It refuses to rewrite ids that changed for unchanged inputs unless ALGORITHM_VERSION was bumped.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hypermindlabs.triage import classify as triage_classify
from hypermindlabs.triage import normalize as triage_normalize
from hypermindlabs.triage.classify import (
    ALGORITHM_VERSION,
    FAILURE_CLASSES,
    TAXONOMY_VERSION,
    Failure,
    classify_failure,
    cluster_state,
    normalize_message,
)

TESTS_DIR = Path(__file__).resolve().parent
CORPUS_PATH = TESTS_DIR / "data" / "triage_corpus.jsonl"
GOLDEN_PATH = TESTS_DIR / "golden" / "triage_cluster_ids.json"
DOCS_PATH = TESTS_DIR.parent / "docs" / "triage.md"
REGENERATE = ".venv/bin/python -m tests.test_failure_triage --regenerate"
INPUT_FIELDS = ("kind", "error_type", "error_message", "error_class", "tool", "model")
KINDS = ("run", "llm", "tool", "retrieval", "policy")


def load_corpus() -> list[dict[str, Any]]:
    with CORPUS_PATH.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


CORPUS = load_corpus()
CORPUS_IDS = [entry["id"] for entry in CORPUS]


def classify(entry: Mapping[str, Any]) -> Failure:
    return classify_failure(**{field: entry.get(field) for field in INPUT_FIELDS})


def fail(**overrides: Any) -> Failure:
    """classify_failure with defaults for the arguments a test does not care about."""
    arguments = {"kind": "tool", "error_type": None, "error_message": "", "tool": "web_search"}
    arguments.update(overrides)
    return classify_failure(**arguments)


# --------------------------------------------------------------------------------------------------
# The labelled corpus


def test_the_corpus_has_at_least_150_entries_covering_every_class() -> None:
    assert len(CORPUS) >= 150
    assert {entry["expected"] for entry in CORPUS} == set(FAILURE_CLASSES)


def test_corpus_entries_have_unique_ids_and_a_known_expected_class() -> None:
    assert len(set(CORPUS_IDS)) == len(CORPUS_IDS)
    assert all(entry["expected"] in FAILURE_CLASSES for entry in CORPUS)
    assert all(entry["kind"] in KINDS for entry in CORPUS)


@pytest.mark.parametrize("entry", CORPUS, ids=CORPUS_IDS)
def test_corpus_entry_is_classified_as_labelled(entry: dict[str, Any]) -> None:
    assert classify(entry).failure_class == entry["expected"]


def test_class_accuracy_on_the_corpus_is_at_least_95_percent() -> None:
    confusion: collections.Counter[tuple[str, str]] = collections.Counter()
    for entry in CORPUS:
        confusion[entry["expected"], classify(entry).failure_class] += 1
    correct = sum(count for (expected, got), count in confusion.items() if expected == got)
    accuracy = correct / len(CORPUS)
    misses = {pair: count for pair, count in confusion.items() if pair[0] != pair[1]}
    assert accuracy >= 0.95, f"accuracy {accuracy:.1%}; (expected, got): count = {misses}"


def test_messages_that_match_no_rule_are_unknown_rather_than_a_guess() -> None:
    unmatched = [entry for entry in CORPUS if entry["expected"] == "unknown"]
    assert len(unmatched) >= 8
    assert [classify(entry).failure_class for entry in unmatched] == ["unknown"] * len(unmatched)


# --------------------------------------------------------------------------------------------------
# Taxonomy and hints


def test_the_taxonomy_has_the_required_classes() -> None:
    required = {
        "tool_schema_mismatch",
        "tool_timeout",
        "retrieval_failure",
        "policy_violation",
        "rate_limit",
        "context_length_exceeded",
        "authentication",
        "upstream_error",
        "unknown",
    }
    assert required <= set(FAILURE_CLASSES)
    assert len(set(FAILURE_CLASSES)) == len(FAILURE_CLASSES)
    assert ALGORITHM_VERSION and TAXONOMY_VERSION


@pytest.mark.parametrize("failure_class", FAILURE_CLASSES)
def test_every_class_gets_a_hint(failure_class: str) -> None:
    failure = fail(error_message="anything", error_class=failure_class)
    assert failure.failure_class == failure_class
    assert len(failure.hint) > 40


@pytest.mark.parametrize(
    ("arguments", "expected_words"),
    [
        pytest.param(
            {"error_message": "'city' is a required property", "error_type": "ValidationError"},
            ("required", "example"),
            id="a missing required property says mark it required, add an example",
        ),
        pytest.param(
            {
                "error_message": "Expecting ',' delimiter: line 1 column 45 (char 44)",
                "error_type": "JSONDecodeError",
            },
            ("strict",),
            id="arguments that are not valid JSON say enable strict tool calls",
        ),
        pytest.param(
            {"error_message": "timed out", "error_type": "ReadTimeout"},
            ("timeout", "backoff", "cache"),
            id="a tool timeout says adjust the timeout, back off, cache",
        ),
        pytest.param(
            {"kind": "retrieval", "error_message": "No documents found for query 'x'"},
            ("freshness", "fallback"),
            id="an empty retrieval says check index freshness, add a fallback",
        ),
        pytest.param(
            {"kind": "policy", "error_message": "Tool call 'send_email' denied by policy 'no-ext'"},
            ("tool policy",),
            id="a call blocked by policy says adjust the tool policy",
        ),
        pytest.param(
            {"kind": "policy", "error_message": "Llama Guard classified the response as unsafe"},
            ("pre-check evaluator",),
            id="a policy step rejection suggests a pre-check evaluator",
        ),
        pytest.param(
            {"kind": "llm", "error_message": "Error code: 429 - rate_limit_exceeded"},
            ("backoff", "jitter", "quota"),
            id="a rate limit says back off with jitter, raise the quota",
        ),
        pytest.param(
            {"kind": "llm", "error_message": "This model's maximum context length is 8192 tokens"},
            ("truncate", "summarize"),
            id="a context overflow says truncate or summarize history",
        ),
        pytest.param(
            {"kind": "llm", "error_message": "invalid x-api-key"},
            ("rotate", "api key"),
            id="an auth failure says check and rotate the api key",
        ),
        pytest.param(
            {"kind": "llm", "error_message": "Error code: 503 - Service Unavailable"},
            ("retry", "backoff", "fail over"),
            id="an upstream 5xx says retry with backoff and fail over",
        ),
    ],
)
def test_known_sub_patterns_get_a_specific_hint(
    arguments: dict[str, Any], expected_words: tuple[str, ...]
) -> None:
    hint = fail(**arguments).hint.lower()
    assert all(word in hint for word in expected_words), hint


# --------------------------------------------------------------------------------------------------
# Signals


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        pytest.param(
            {"error_message": "weird gateway reply", "error_class": "rate_limit"},
            "rate_limit",
            id="an explicit known class is trusted",
        ),
        pytest.param(
            {"error_message": "weird gateway reply", "error_class": "Rate-Limit "},
            "rate_limit",
            id="an explicit class is matched ignoring case, hyphens and spaces",
        ),
        pytest.param(
            {"error_message": "timed out", "error_type": "ReadTimeout", "error_class": "slowness"},
            "tool_timeout",
            id="an explicit unknown class is ignored",
        ),
        pytest.param(
            {"kind": "llm", "error_message": "Error code: 429"},
            "rate_limit",
            id="a 429 status in the message is a rate limit",
        ),
        pytest.param(
            {"kind": "llm", "error_message": "status code 503"},
            "upstream_error",
            id="a 503 status is an upstream error",
        ),
        pytest.param(
            {"kind": "llm", "error_message": "HTTP 401"},
            "authentication",
            id="a 401 status is an authentication failure",
        ),
        pytest.param(
            {"kind": "llm", "error_message": "Error code: 404"},
            "invalid_request",
            id="a 404 status from a provider is an invalid request",
        ),
        pytest.param(
            {"error_message": "504 Gateway Timeout"},
            "tool_timeout",
            id="a 504 from a tool's api is a tool timeout",
        ),
        pytest.param(
            {"kind": "llm", "error_type": "openai.RateLimitError", "error_message": ""},
            "rate_limit",
            id="the exception type alone decides when the message is empty",
        ),
        pytest.param(
            {"error_type": "json.decoder.JSONDecodeError", "error_message": "bad"},
            "tool_schema_mismatch",
            id="a JSONDecodeError is a schema mismatch",
        ),
        pytest.param(
            {"kind": "llm", "error_type": "ValueError", "error_message": "rate_limit_exceeded"},
            "rate_limit",
            id="a provider error code in the message beats a generic exception type",
        ),
        pytest.param(
            {
                "kind": "llm",
                "error_message": "Traceback (most recent call last):\n"
                '  File "/app/x.py", line 3, in f\n    client.get(url, timeout=30)\n'
                "openai.RateLimitError: slow down",
            },
            "rate_limit",
            id="source lines in traceback frames are not read as signals",
        ),
        pytest.param(
            {"kind": "tool", "error_type": "KeyError", "error_message": "'x'"},
            "tool_execution_error",
            id="a built-in exception raised by a tool is a tool execution error",
        ),
        pytest.param(
            {"kind": "llm", "error_type": "KeyError", "error_message": "'x'"},
            "unknown",
            id="the same built-in exception in an llm step is not guessed",
        ),
    ],
)
def test_classification_signals(arguments: dict[str, Any], expected: str) -> None:
    assert fail(**arguments).failure_class == expected


@pytest.mark.parametrize(
    ("message", "error_type", "hint_word"),
    [
        pytest.param("timed out", "httpx.ReadTimeout", "latency", id="a timeout"),
        pytest.param("Error code: 429 - rate limit", "RateLimitError", "embeddings", id="a rate limit"),
        pytest.param("503 Server Error: Service Unavailable", "HTTPError", "replica", id="a 5xx"),
        pytest.param("(401) Reason: Unauthorized", "UnauthorizedException", "rotate", id="an auth failure"),
        pytest.param("Collection `docs` doesn't exist!", None, "index", id="a missing collection"),
        pytest.param(
            "Reranker returned malformed payload", "RuntimeError", "fallback", id="an unrecognized error"
        ),
    ],
)
def test_a_failed_retrieval_step_is_a_retrieval_failure_whatever_the_cause(
    message: str, error_type: str | None, hint_word: str
) -> None:
    failure = fail(kind="retrieval", error_type=error_type, error_message=message, tool="kb")
    assert failure.failure_class == "retrieval_failure"
    assert hint_word in failure.hint


@pytest.mark.parametrize("kind", KINDS)
def test_a_guardrail_rejection_is_a_policy_violation_whichever_step_raised_it(kind: str) -> None:
    message = "Blocked by guardrail 'pii_filter': detected EMAIL_ADDRESS"
    assert fail(kind=kind, error_message=message).failure_class == "policy_violation"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        pytest.param("tool", "tool_timeout", id="in a tool step a timeout is a tool timeout"),
        pytest.param("llm", "llm_timeout", id="in an llm step it is an llm timeout"),
        pytest.param("policy", "tool_timeout", id="a guardrail call that times out did not reject anything"),
    ],
)
def test_timeouts_are_attributed_by_step_kind(kind: str, expected: str) -> None:
    assert (
        fail(kind=kind, error_type="httpx.ReadTimeout", error_message="timed out").failure_class == expected
    )


@pytest.mark.parametrize(
    "entry",
    [entry for entry in CORPUS if entry["kind"] in ("llm", "tool")],
    ids=[entry["id"] for entry in CORPUS if entry["kind"] in ("llm", "tool")],
)
def test_a_run_whose_top_level_error_is_a_step_error_is_classified_the_same_way(
    entry: dict[str, Any],
) -> None:
    as_step = classify(entry).failure_class
    as_run = classify({**entry, "kind": "run", "tool": entry["tool"] if entry["kind"] == "tool" else None})
    if (
        as_step == "llm_timeout"
        and "APITimeoutError" not in f"{entry['error_type']} {entry['error_message']}"
    ):
        as_step = "tool_timeout"  # documented: a bare timeout on a run is attributed to tools
    assert as_run.failure_class == as_step


@pytest.mark.parametrize(
    ("kind", "tool", "model", "subject"),
    [
        pytest.param("tool", "web_search", "gpt-4o", "web_search", id="a tool step is about its tool"),
        pytest.param("llm", "web_search", "gpt-4o", "gpt-4o", id="an llm step is about its model"),
        pytest.param("run", "web_search", "gpt-4o", "web_search", id="a run naming a tool is about the tool"),
        pytest.param("run", None, "gpt-4o", "gpt-4o", id="a run without a tool is about its model"),
        pytest.param("tool", None, "gpt-4o", None, id="a tool step without a tool has no subject"),
        pytest.param("retrieval", "kb", "gpt-4o", "kb", id="a retrieval step is about its tool"),
        pytest.param("retrieval", None, "gpt-4o", None,
                     id="a retrieval step is not about the model it inherited from its run"),
        pytest.param("policy", None, "gpt-4o", None, id="a policy step is not about the run's model"),
    ],
)
def test_the_subject_is_the_tool_or_the_model(
    kind: str, tool: str | None, model: str | None, subject: str | None
) -> None:
    assert fail(kind=kind, tool=tool, model=model, error_message="timed out").subject == subject


def test_the_label_is_class_subject_and_short_template() -> None:
    failure = fail(
        error_type="ReadTimeout",
        error_message=(
            "HTTPSConnectionPool(host='api.example.com', port=443): Read timed out. (read timeout=30)"
        ),
    )
    assert failure.label == "tool_timeout · web_search · Read timed out. (read timeout=<n>)"
    assert fail(tool=None, error_message="timed out").label == "tool_timeout · timed out"
    long_label = fail(error_message="connection refused " + "word " * 60).label
    assert long_label.endswith("…") and len(long_label) < 120


# --------------------------------------------------------------------------------------------------
# Normalization


@pytest.mark.parametrize(
    ("message", "template"),
    [
        pytest.param("retry 3 of 10 after 2.5", "retry <n> of <n> after <n>", id="numbers become n"),
        pytest.param(
            "object at 0x7f3b2c1d5e10 hash deadbeef01", "object at <hex> hash <hex>", id="hex becomes hex"
        ),
        pytest.param(
            "run 4e1c9f0a-2b7d-4d55-9a1e-0c6f8b3d2a71 failed", "run <uuid> failed", id="uuids become uuid"
        ),
        pytest.param("mail ops@example.com now", "mail <email> now", id="emails become email"),
        pytest.param("see https://api.example.com/v1/x?y=2.", "see <url>.", id="urls become url"),
        pytest.param(
            "cannot reach db-7.prod.internal:5432", "cannot reach <host>:<n>", id="hosts become host"
        ),
        pytest.param("connect to 10.0.3.7 port 443", "connect to <ip> port <n>", id="ips become ip"),
        pytest.param(
            "open /var/data/run_81/out.csv failed", "open <path> failed", id="unix paths become path"
        ),
        pytest.param(
            r"open C:\Users\bob\file.txt failed", "open <path> failed", id="windows paths become path"
        ),
        pytest.param(
            "key 'city' and \"units\" and `top_k`",
            "key <str> and <str> and <str>",
            id="quoted values become str",
        ),
        pytest.param(
            "This model's maximum context",
            "This model's maximum context",
            id="an apostrophe in prose is not a quote",
        ),
        pytest.param("got {'a': {'b': [1, 2]}} back", "got <json> back", id="dicts become json"),
        pytest.param(
            'expected one of ["a", "b"] here', "expected one of <json> here", id="lists become json"
        ),
        pytest.param(
            "wait 30s then 1500ms then 2.5 seconds then 6m0s",
            "wait <dur> then <dur> then <dur> then <dur>",
            id="durations become dur",
        ),
        pytest.param("at 2024-05-14T09:12:03Z", "at <ts>", id="timestamps become ts"),
        pytest.param("req_011CSHoEeqs5C35K2UUqR7Fy rejected", "req_<id> rejected", id="opaque ids become id"),
        pytest.param(
            "key sk-proj-****abcd is wrong", "key <redacted> is wrong", id="masked secrets become redacted"
        ),
        pytest.param(
            'Traceback (most recent call last):\n  File "/app/a.py", line 9, in f\n    g(x)\n'
            "    ^^^^\nValueError: bad 7",
            "ValueError: bad <n>",
            id="traceback frames are dropped",
        ),
        pytest.param(
            "first\n\n  second  \n\nthird\nfourth",
            "first | second | third",
            id="blank lines go and only the first three lines stay",
        ),
        pytest.param("a \t  b\r\n", "a b", id="whitespace collapses"),
        pytest.param(
            "Error code: 429 - {'error': {'message': 'Slow down 5', 'type': 'requests', "
            "'code': 'rate_limit_exceeded'}}",
            "Error code: <n> - Slow down <n> [rate_limit_exceeded]",
            id="a provider error body is reduced to its message and code",
        ),
    ],
)
def test_normalization(message: str, template: str) -> None:
    assert normalize_message(message) == template


def test_long_messages_are_capped_with_an_ellipsis() -> None:
    template = normalize_message("word " * 500)
    assert template.endswith("…") and len(template) <= 241


# --------------------------------------------------------------------------------------------------
# Stable cluster ids


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("Read timed out. (read timeout=30)", "Read timed out. (read timeout=5.0)", id="numbers"),
        pytest.param("request req_8f3a0c2b91d4 failed", "request req_77aa01ff3c2e failed", id="ids"),
        pytest.param(
            "HTTPSConnectionPool(host='api.example.com', port=443): Read timed out.",
            "HTTPSConnectionPool(host='maps.googleapis.com', port=8443): Read timed out.",
            id="hosts",
        ),
        pytest.param("cannot reach db-1.internal", "cannot reach replica.eu.internal", id="bare hosts"),
        pytest.param(
            "[Errno 2] No such file or directory: /tmp/a/b.csv",
            "[Errno 2] No such file or directory: /data/x.csv",
            id="paths",
        ),
        pytest.param(
            "'city' is a required property", "'departure_date' is a required property", id="quoted values"
        ),
        pytest.param(
            "run 4e1c9f0a-2b7d-4d55-9a1e-0c6f8b3d2a71 timed out after 30s",
            "run 0c6f8b3d-2a71-4d55-9a1e-4e1c9f0a2b7d timed out after 1500ms",
            id="uuids and durations",
        ),
    ],
)
def test_messages_differing_only_in_variable_parts_share_a_cluster(first: str, second: str) -> None:
    assert fail(error_message=first).cluster_id == fail(error_message=second).cluster_id


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            {"error_message": "Read timed out."},
            {"error_message": "Connect timed out."},
            id="different templates",
        ),
        pytest.param(
            {"error_message": "timed out", "tool": "web_search"},
            {"error_message": "timed out", "tool": "fetch_url"},
            id="different tools",
        ),
        pytest.param(
            {"kind": "llm", "model": "gpt-4o", "error_message": "Error code: 500"},
            {"kind": "llm", "model": "gpt-4o-mini", "error_message": "Error code: 500"},
            id="different models",
        ),
        pytest.param(
            {"error_message": "boom", "error_class": "rate_limit"},
            {"error_message": "boom", "error_class": "upstream_error"},
            id="different classes",
        ),
    ],
)
def test_different_failures_do_not_share_a_cluster(first: dict[str, Any], second: dict[str, Any]) -> None:
    assert fail(**first).cluster_id != fail(**second).cluster_id


def test_cluster_ids_are_16_lowercase_hex_characters() -> None:
    assert all(
        len(f.cluster_id) == 16 and set(f.cluster_id) <= set("0123456789abcdef")
        for f in map(classify, CORPUS)
    )


def test_the_fast_record_builder_makes_the_same_frozen_failure_as_the_dataclass() -> None:
    # Internal: classification builds its Failure through the slots' descriptors (taxonomy.make_failure).
    for entry in CORPUS[:40]:
        built = classify(entry)
        twin = Failure(**dataclasses.asdict(built))
        assert type(built) is Failure and built == twin and hash(built) == hash(twin) and repr(built) == repr(twin)
        with pytest.raises(dataclasses.FrozenInstanceError):
            built.label = "changed"  # type: ignore[misc]


def test_the_same_failures_in_shuffled_order_get_identical_ids() -> None:
    in_order = {entry["id"]: classify(entry) for entry in CORPUS}
    shuffled = CORPUS[:]
    random.Random(20240514).shuffle(shuffled)
    assert {entry["id"]: classify(entry) for entry in reversed(shuffled)} == in_order


@pytest.mark.parametrize("hash_seed", ["0", "4242"])
def test_cluster_ids_do_not_depend_on_the_process(hash_seed: str) -> None:
    script = (
        "import json, sys\n"
        "from hypermindlabs.triage.classify import classify_failure\n"
        "fields = " + repr(INPUT_FIELDS) + "\n"
        "rows = [json.loads(line) for line in open(sys.argv[1], encoding='utf-8')]\n"
        "print(json.dumps({r['id']: classify_failure(**{f: r.get(f) for f in fields}).cluster_id"
        " for r in rows}))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    result = subprocess.run(
        [sys.executable, "-c", script, str(CORPUS_PATH)], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(result.stdout) == {entry["id"]: classify(entry).cluster_id for entry in CORPUS}


# --------------------------------------------------------------------------------------------------
# Golden file


def _input_digest(entry: Mapping[str, Any]) -> str:
    canonical = json.dumps({field: entry.get(field) for field in INPUT_FIELDS}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def build_golden() -> dict[str, Any]:
    entries = {}
    for entry in CORPUS:
        failure = classify(entry)
        entries[entry["id"]] = {
            "input": _input_digest(entry),
            "failure_class": failure.failure_class,
            "cluster_id": failure.cluster_id,
            "template": failure.template,
        }
    return {
        "_generated": f"Code generated by `{REGENERATE}`. DO NOT EDIT.",
        "algorithm_version": ALGORITHM_VERSION,
        "taxonomy_version": TAXONOMY_VERSION,
        "entries": entries,
    }


def golden_problems(golden: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Why ``golden`` no longer matches ``current``, phrased as what the developer has to do."""
    if golden.get("algorithm_version") != current["algorithm_version"]:
        return [
            f"the golden file records ALGORITHM_VERSION {golden.get('algorithm_version')!r} but the "
            f"code says {current['algorithm_version']!r}: regenerate it with `{REGENERATE}`"
        ]
    old, new = golden.get("entries", {}), current["entries"]
    changed = [
        key for key in new if key in old and old[key]["input"] == new[key]["input"] and old[key] != new[key]
    ]
    problems = []
    if changed:
        example = changed[0]
        problems.append(
            f"{len(changed)} corpus entries get a different class, template or cluster id with the same "
            f"ALGORITHM_VERSION {current['algorithm_version']!r}: normalization or classification changed. "
            f"Bump ALGORITHM_VERSION in hypermindlabs/triage/taxonomy.py (clusters regroup once, on purpose) "
            f"and regenerate with `{REGENERATE}`. First: {example!r}\n"
            f"  was {old[example]}\n  now {new[example]}"
        )
    stale = sorted(set(old) ^ set(new)) + [
        key for key in new if key in old and old[key]["input"] != new[key]["input"]
    ]
    if stale:
        problems.append(
            f"the corpus changed ({len(stale)} entries added, removed or edited, e.g. {stale[0]!r}): "
            f"regenerate with `{REGENERATE}` (no version bump needed for corpus edits)"
        )
    return problems


def test_the_golden_file_matches_every_corpus_entry() -> None:
    golden = json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))
    problems = golden_problems(golden, build_golden())
    assert not problems, "\n".join(problems)


def test_the_golden_file_records_the_current_algorithm_version() -> None:
    golden = json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))
    assert golden["algorithm_version"] == ALGORITHM_VERSION, f"regenerate with `{REGENERATE}`"
    assert golden["taxonomy_version"] == TAXONOMY_VERSION, f"regenerate with `{REGENERATE}`"


def _synthetic(version: str, **entries: tuple[str, str]) -> dict[str, Any]:
    return {
        "algorithm_version": version,
        "entries": {
            key: {"input": digest, "failure_class": "unknown", "cluster_id": cluster, "template": "t"}
            for key, (digest, cluster) in entries.items()
        },
    }


def test_the_golden_check_asks_for_a_version_bump_when_ids_change_silently() -> None:
    problems = golden_problems(_synthetic("1", a=("in", "id-old")), _synthetic("1", a=("in", "id-new")))
    assert len(problems) == 1 and "Bump ALGORITHM_VERSION" in problems[0] and REGENERATE in problems[0]


def test_the_golden_check_asks_only_for_regeneration_after_a_version_bump_or_corpus_edit() -> None:
    bumped = golden_problems(_synthetic("1", a=("in", "x")), _synthetic("2", a=("in", "y")))
    added = golden_problems(_synthetic("1", a=("in", "x")), _synthetic("1", a=("in", "x"), b=("in2", "z")))
    edited = golden_problems(_synthetic("1", a=("in", "x")), _synthetic("1", a=("edited", "z")))
    for problems in (bumped, added, edited):
        assert len(problems) == 1 and REGENERATE in problems[0] and "Bump" not in problems[0]


def test_regenerating_refuses_changed_ids_without_a_version_bump(tmp_path: Path) -> None:
    current = build_golden()
    first = next(iter(current["entries"]))
    tampered = json.loads(json.dumps(current))
    tampered["entries"][first]["cluster_id"] = "0" * 16
    path = tmp_path / "golden.json"
    path.write_text(json.dumps(tampered), encoding="utf-8")
    assert regenerate(path) == 1
    assert json.loads(path.read_text(encoding="utf-8")) == tampered
    tampered["algorithm_version"] = "0"
    path.write_text(json.dumps(tampered), encoding="utf-8")
    assert regenerate(path) == 0
    assert json.loads(path.read_text(encoding="utf-8")) == current


def regenerate(path: Path = GOLDEN_PATH) -> int:
    current = build_golden()
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        refusals = [problem for problem in golden_problems(old, current) if "Bump" in problem]
        if refusals:
            print("\n".join(refusals), file=sys.stderr)
            return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(current, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(f"wrote {path} ({len(current['entries'])} entries, ALGORITHM_VERSION {ALGORITHM_VERSION})")
    return 0


# --------------------------------------------------------------------------------------------------
# Properties

_maybe_text = st.one_of(st.none(), st.text(max_size=400))


@settings(max_examples=400, deadline=None)
@given(
    kind=st.one_of(st.sampled_from(KINDS), st.text(max_size=20)),
    error_type=_maybe_text,
    error_message=_maybe_text,
    error_class=_maybe_text,
    tool=_maybe_text,
    model=_maybe_text,
)
def test_classify_failure_never_raises_and_returns_a_known_class(
    kind: str,
    error_type: str | None,
    error_message: str | None,
    error_class: str | None,
    tool: str | None,
    model: str | None,
) -> None:
    failure = classify_failure(
        kind=kind,
        error_type=error_type,
        error_message=error_message,
        error_class=error_class,
        tool=tool,
        model=model,
    )
    assert failure.failure_class in FAILURE_CLASSES
    assert len(failure.cluster_id) == 16 and failure.hint and failure.label.startswith(failure.failure_class)
    assert "\n" not in failure.template and len(failure.template) <= 241


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(429, id="a number"),
        pytest.param({"message": "rate limit", "code": 429}, id="an unhashable dict"),
        pytest.param(["timed out"], id="an unhashable list"),
    ],
)
def test_non_string_values_from_json_are_read_as_text_without_raising(value: object) -> None:
    failure = classify_failure(kind="llm", error_type=None, error_message=value, model=value)  # type: ignore[arg-type]
    assert failure.failure_class in FAILURE_CLASSES


@settings(max_examples=300, deadline=None)
@given(message=st.text(alphabet=st.characters(codec="utf-8"), max_size=2000))
def test_normalize_message_never_raises_and_returns_one_capped_line(message: str) -> None:
    template = normalize_message(message)
    assert "\n" not in template and len(template) <= 241


_FORMATS = (
    "Read timed out. (read timeout={})",
    "Rate limit reached: Limit {}, Used {}, Requested {}. Please try again in {}ms.",
    "This model's maximum context length is {} tokens. However, your messages resulted in {} tokens.",
    "Expecting ',' delimiter: line {} column {} (char {})",
    "Unexpected Response: {} (Not Found) after {} retries",
)


def _mask_patterns() -> tuple[str, ...]:
    """Every corpus message with digits, its digit runs made format slots (kept digits too)."""
    out = []
    for entry in CORPUS:
        message = entry.get("error_message") or ""
        if re.search(r"\d", message):
            out.append(re.sub(r"\d+", "{}", message.replace("{", "{{").replace("}", "}}")))
    return tuple(out)


_MASK_PATTERNS = _mask_patterns()
_MASK_SLOTS = max(p.count("{}") for p in _MASK_PATTERNS)


@settings(max_examples=200, deadline=None)
@given(
    pattern=st.sampled_from(_FORMATS),
    first=st.lists(st.integers(0, 10**9), min_size=4, max_size=4),
    second=st.lists(st.integers(0, 10**9), min_size=4, max_size=4),
)
def test_messages_differing_only_in_numbers_share_a_template(
    pattern: str, first: list[int], second: list[int]
) -> None:
    assert normalize_message(pattern.format(*first)) == normalize_message(pattern.format(*second))


@settings(max_examples=1500, deadline=None)
@given(
    prefix=st.sampled_from(
        ["", "(", "[", ".", "-", "timeout=", "x-=", "a=b=", "v", "org-", "req_", "<", ".req_", "(org-"]
    ),
    value=st.one_of(
        st.integers(-(10**12), 10**12).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(str),
        st.text(alphabet="0123456789.,-+eEsmhuµ", min_size=1, max_size=12),
        st.text(alphabet="0123456789abcdefABCDEFxyzXYZhms_", min_size=1, max_size=30),
    ),
    suffix=st.sampled_from(["", ")", ",", ".", "),", "s", "ms.", "]:", "x", ">", "-1", "_2"]),
)
@example(prefix="", value="000000E0", suffix="")  # an exponent number that is also a hex run: <hex>
@example(prefix="(", value="00000e00", suffix=")")
def test_the_token_fast_paths_agree_with_the_token_patterns(prefix: str, value: str, suffix: str) -> None:
    # Internal: the str fast paths for numbers and durations must never change a template.
    token = prefix + value + suffix
    assert triage_normalize._normalize_token(token) == triage_normalize._normalize_token_by_patterns(token)


@settings(max_examples=1500, deadline=None)
@given(
    pattern=st.sampled_from(_MASK_PATTERNS),
    values=st.lists(st.integers(0, 10**12), min_size=_MASK_SLOTS, max_size=_MASK_SLOTS),
    digits=st.permutations("123456789"),
)
def test_the_template_memo_by_digit_mask_never_changes_a_template(
    pattern: str, values: list[int], digits: list[str]
) -> None:
    # Internal: a template memoized for one message serves every message with the same digit mask
    # (the same message with its digits 1-9 swapped around): it must be that message's template too.
    triage_normalize._TEMPLATE_MEMO.clear()
    swap = str.maketrans("123456789", "".join(digits))
    for variant in (values, [str(v).translate(swap) for v in values], [str(v).replace("0", "1") for v in values]):
        message = pattern.format(*variant)
        lines = triage_normalize._meaningful_lines(message)
        computed = triage_normalize._normalize_lines(lines)
        assert triage_normalize._template(lines, "\n".join(lines)) == computed, message


def _mask_entries() -> tuple[tuple[dict[str, Any], str], ...]:
    """Every corpus entry whose message has digits, with the message made a format pattern."""
    out = []
    for entry in CORPUS:
        message = entry.get("error_message") or ""
        if re.search(r"\d", message):
            out.append((entry, re.sub(r"\d+", "{}", message.replace("{", "{{").replace("}", "}}"))))
    return tuple(out)


_MASK_ENTRIES = _mask_entries()
_MASK_ENTRY_SLOTS = max(pattern.count("{}") for _, pattern in _MASK_ENTRIES)


_MEMOS = (triage_classify._DECISION_MEMO, triage_classify._FAILURE_MEMO, triage_normalize._TEMPLATE_MEMO)


def _classify_without_memos(arguments: tuple[Any, ...]) -> Any:
    saved = [dict(memo) for memo in _MEMOS]
    for memo in _MEMOS:
        memo.clear()
    try:
        return triage_classify._classify(*arguments)
    finally:
        for memo, entries in zip(_MEMOS, saved, strict=True):
            memo.update(entries)  # type: ignore[attr-defined]


@settings(max_examples=1500, deadline=None)
@given(
    index=st.integers(0, len(_MASK_ENTRIES) - 1),
    values=st.lists(
        st.one_of(st.integers(0, 10**12), st.sampled_from([401, 403, 404, 408, 429, 500, 503, 504, 529])),
        min_size=_MASK_ENTRY_SLOTS,
        max_size=_MASK_ENTRY_SLOTS,
    ),
    digits=st.permutations("123456789"),
)
def test_the_decision_memo_by_digit_mask_never_changes_a_classification(
    index: int, values: list[int], digits: list[str]
) -> None:
    # Internal: a (class, hint) memoized for one message serves every message with the same kind,
    # type, tool presence and digit mask; it must be that message's classification too, HTTP
    # statuses included (429 and 129 share a mask).
    entry, pattern = _MASK_ENTRIES[index]
    triage_classify._DECISION_MEMO.clear()
    triage_normalize._TEMPLATE_MEMO.clear()
    swap = str.maketrans("123456789", "".join(digits))
    for variant in (values, [str(v).translate(swap) for v in values], [str(v).replace("0", "1") for v in values]):
        arguments = (
            entry.get("kind"), entry.get("error_type"), pattern.format(*variant), entry.get("error_class"),
            entry.get("tool"), entry.get("model"),
        )  # fmt: skip
        assert triage_classify._classify(*arguments) == _classify_without_memos(arguments), arguments


@pytest.mark.parametrize(
    "first, second, expected",
    [
        pytest.param("Error code: 129 - upstream said no", "Error code: 429 - upstream said no", "rate_limit",
                     id="an HTTP status read after a number of the same mask"),
        pytest.param("request failed (status 404) after 3 tries", "request failed (status 503) after 3 tries",
                     "upstream_error", id="another status of the same mask"),
    ],
)  # fmt: skip
def test_the_decision_memo_does_not_serve_a_match_that_read_the_http_status(
    first: str, second: str, expected: str
) -> None:
    triage_classify._DECISION_MEMO.clear()
    classify_failure(kind="llm", error_type=None, error_message=first, model="m")
    assert classify_failure(kind="llm", error_type=None, error_message=second, model="m").failure_class == expected


def test_the_first_character_check_of_traceback_lines_passes_every_line_the_noise_rules_match() -> None:
    # Internal: _meaningful_lines only tries _TRACEBACK_NOISE (compared lower-cased) and
    # _STACK_NOISE_RE on lines whose first visible character is in _STACK_NOISE_FIRST.
    lowered_firsts = {line[0] for line in triage_normalize._TRACEBACK_NOISE}
    assert all(ch in triage_normalize._STACK_NOISE_FIRST for ch in map(chr, range(sys.maxunicode + 1))
               if ch.lower()[:1] in lowered_firsts)  # fmt: skip
    for line in ("  at com.example.Foo(Foo.java:1)", "\t... 12 more", "  [Previous line repeated 9 more times]",
                 "    ^^^^~~~~", "Traceback (most recent call last):"):  # fmt: skip
        assert line.strip()[0] in triage_normalize._STACK_NOISE_FIRST
        assert triage_normalize._meaningful_lines(f"boom\n{line}") == ["boom"], line


@settings(max_examples=1500, deadline=None)
@given(
    prefix=st.sampled_from(["", "(", "0x", "v", "req_", "gpt-", "'", "{\"code\": \"e", "line "]),
    digits=st.text(alphabet="0123456789", min_size=1, max_size=14),
    suffix=st.sampled_from(["", "s", "ms", "o-mini", "x", "abcdef12", ".5", "}", "'", "-01-02T03:04:05Z"]),
    other=st.text(alphabet="0123456789", min_size=1, max_size=14),
)
def test_the_template_memo_agrees_with_the_patterns_on_digit_shaped_tokens(
    prefix: str, digits: str, suffix: str, other: str
) -> None:
    triage_normalize._TEMPLATE_MEMO.clear()
    masked_twin = "".join("1" if ch in "23456789" else ch for ch in digits)
    for token in (digits, masked_twin, other[: len(digits)].ljust(len(digits), "7")):
        lines = [f"failed at {prefix}{token}{suffix} after retry"]
        assert triage_normalize._template(lines, lines[0]) == triage_normalize._normalize_lines(lines), lines


# --------------------------------------------------------------------------------------------------
# Trend


@pytest.mark.parametrize(
    ("current", "previous", "seen_before_window", "state"),
    [
        pytest.param(5, 0, False, "new", id="first seen in this window is new"),
        pytest.param(5, 0, True, "rising", id="back after a quiet window is rising"),
        pytest.param(30, 10, True, "rising", id="three times as many is rising"),
        pytest.param(3, 1, True, "steady", id="small counts moving within noise are steady"),
        pytest.param(100, 95, True, "steady", id="about the same is steady"),
        pytest.param(5, 40, True, "declining", id="an eighth as many is declining"),
        pytest.param(0, 5, True, "gone", id="none in this window is gone"),
        pytest.param(0, 0, True, "gone", id="none anywhere recent is gone"),
    ],
)
def test_cluster_state(current: int, previous: int, seen_before_window: bool, state: str) -> None:
    assert cluster_state(current, previous, seen_before_window=seen_before_window) == state


def test_cluster_state_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="counts must be >= 0"):
        cluster_state(-1, 0, seen_before_window=False)


# --------------------------------------------------------------------------------------------------
# Docs


def test_the_docs_table_lists_every_class() -> None:
    text = DOCS_PATH.read_text(encoding="utf-8")
    taxonomy = text[text.index("## Taxonomy") :].split("\n## ", 1)[0]  # the class table's section
    rows = [line for line in taxonomy.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list(FAILURE_CLASSES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--regenerate", action="store_true", help=f"rewrite {GOLDEN_PATH.name}")
    arguments = parser.parse_args(argv)
    if not arguments.regenerate:
        parser.print_help()
        return 2
    return regenerate()


if __name__ == "__main__":
    raise SystemExit(main())
