"""The ingest doors pause CPython's cyclic collector around a batch and always resume it."""

from __future__ import annotations

import gc
import threading

from hypermindlabs.ingest import collector_paused


def test_the_collector_is_paused_inside_a_batch_and_running_again_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # the HTTP door pauses around ingest_objects, which pauses too
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_failing_batch_resumes_the_collector() -> None:
    try:
        with collector_paused():
            raise ValueError("bad batch")
    except ValueError:
        pass
    assert gc.isenabled()


def test_a_collector_switched_off_by_the_application_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_batches_of_two_threads_resume_it_when_the_last_one_ends() -> None:
    first_in, release = threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def first() -> None:
        with collector_paused():
            first_in.set()
            release.wait(10)
        seen["after first"] = gc.isenabled()

    t = threading.Thread(target=first)
    t.start()
    assert first_in.wait(10)
    with collector_paused():
        pass
    seen["after second, first still in"] = gc.isenabled()
    release.set()
    t.join(10)
    assert seen == {"after second, first still in": False, "after first": True}
    assert gc.isenabled()
