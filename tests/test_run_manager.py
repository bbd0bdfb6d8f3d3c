"""RunManager: timing, nesting, outcomes (also when the agent raises), batching, never raising."""

from __future__ import annotations

import threading
import time

import pytest

from hypermindlabs.sdk.run_manager import RunManager


class Clock:
    def __init__(self) -> None:
        self.now = 1_767_225_600 * 10**9
        self.lock = threading.Lock()

    def __call__(self) -> int:
        with self.lock:
            self.now += 1_000_000  # every reading advances 1 ms
            return self.now


def test_a_run_and_its_steps_reach_the_store_with_timing_parents_and_totals(store):
    with RunManager(store, project="support", tags={"env": "prod"}, clock=Clock()) as rm:
        with rm.run("answer", scenario="refund", model="gpt-4o", tags={"release": "1.2"}) as run:
            with run.llm() as llm:
                llm.set_usage(input_tokens=800, output_tokens=90)
                with run.tool("crm_lookup") as tool:
                    tool.set_attribute("rows", 3)
            with run.retrieval(tool="kb") as r:
                r.set_usage(input_chars=40)
            with run.llm(model="gpt-4o-mini") as llm2:
                llm2.set_usage(input_tokens=100, output_tokens=10)
        run_id = run.run_id
    trace = store.get_run(run_id)
    evs = {e["name"]: e for e in trace["events"]}
    root = trace["run"]
    assert root["status"] == "ok" and root["project"] == "support" and root["tags"] == {"env": "prod", "release": "1.2"}
    assert root["usage"]["input_tokens"] == 900 and root["usage"]["output_tokens"] == 100
    assert root["attributes"]["tool_calls"] == 1 and root["attributes"]["steps"] == 4
    chat = evs["chat gpt-4o"]
    assert chat["parent_span_id"] == root["span_id"] and chat["scenario"] == "refund"
    assert evs["execute_tool crm_lookup"]["parent_span_id"] == chat["span_id"]
    assert evs["execute_tool crm_lookup"]["attributes"] == {"rows": 3}
    assert evs["retrieval"]["parent_span_id"] == root["span_id"]
    assert evs["chat gpt-4o-mini"]["model"] == "gpt-4o-mini"
    assert {e["trace_id"] for e in trace["events"]} == {root["trace_id"]}
    assert all(e["duration_ms"] > 0 for e in trace["events"])


def test_when_the_agent_raises_the_step_and_run_record_the_error_and_the_exception_propagates(store):
    rm = RunManager(store)
    with pytest.raises(TimeoutError):
        with rm.run("flaky", project="p") as run:
            with run.tool("web_search"):
                raise TimeoutError("Read timed out. (read timeout=30)")
    rm.close()
    trace = store.get_run(run.run_id)
    assert trace["run"]["status"] == "error"
    assert trace["run"]["error"]["type"] == "TimeoutError"
    tool = next(e for e in trace["events"] if e["kind"] == "tool")
    assert tool["status"] == "error" and "read timeout=30" in tool["error"]["message"]


def test_a_graceful_failure_is_recorded_without_raising(store):
    with RunManager(store) as rm:
        with rm.run() as run:
            run.fail("gave up after 3 attempts", error_class="tool_timeout")
    assert store.get_run(run.run_id)["run"]["error"] == {"type": "Error", "message": "gave up after 3 attempts",
                                                         "class": "tool_timeout"}  # fmt: skip


def test_many_threads_record_concurrently_and_everything_arrives_once(store):
    rm = RunManager(store, batch_size=200)
    ids: list[str] = []
    lock = threading.Lock()

    def agent(n: int) -> None:
        for _ in range(n):
            with rm.run(project="p") as run:
                for t in ("a", "b"):
                    with run.tool(t):
                        pass
            with lock:
                ids.append(run.run_id)

    threads = [threading.Thread(target=agent, args=(25,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rm.close()
    assert len(set(ids)) == 100
    assert store.count_events() == 300
    assert rm.stats.written == 300 and rm.stats.recorded == 300


def test_recording_never_waits_on_a_slow_sink_and_drops_are_counted():
    release = threading.Event()
    got: list[int] = []

    def slow(batch):
        release.wait(5)
        got.append(len(batch))

    rm = RunManager(sink=slow, max_buffer=10, batch_size=5, flush_interval_s=0.01)
    started = time.monotonic()
    for _ in range(100):
        with rm.run():
            pass
    elapsed = time.monotonic() - started
    assert elapsed < 2.0  # generous: the point is it did not block for the 5 s the sink waits
    assert rm.stats.dropped_buffer_full > 0
    release.set()
    rm.close()
    assert sum(got) + rm.stats.dropped_buffer_full == 100


def test_a_failing_sink_never_raises_into_the_agent():
    def broken(batch):
        raise ConnectionError("database is down")

    rm = RunManager(sink=broken, flush_interval_s=0.01)
    with rm.run() as run:
        with run.llm(model="m"):
            pass
    assert rm.flush(5)
    rm.close()
    assert rm.stats.dropped_sink_error == 2 and rm.stats.written == 0


def test_invalid_user_input_is_dropped_and_counted_not_raised(store):
    with RunManager(store) as rm:
        with rm.run(tags={"bad key!": "x"}):
            pass
        with rm.run(tags={"ok": "x"}):
            pass
    assert rm.stats.dropped_invalid == 1 and store.count_events() == 1


def test_flush_makes_recorded_events_visible(store):
    rm = RunManager(store, flush_interval_s=5)
    with rm.run() as run:
        pass
    assert rm.flush(5)
    assert store.get_run(run.run_id) is not None
    rm.close()
