"""The collector is paused for the span of a tick and resumes after, however ticks nest."""

from __future__ import annotations

import gc
import threading

from statemachines.core.engine.gc_pause import gc_paused


def test_paused_inside_resumed_after_even_when_it_raises() -> None:
    assert gc.isenabled()
    try:
        with gc_paused():
            assert not gc.isenabled()
            with gc_paused():  # a tick that recovers first
                assert not gc.isenabled()
            assert not gc.isenabled()
            raise KeyError("the tick failed")
    except KeyError:
        pass
    assert gc.isenabled()


def test_an_application_that_turned_it_off_keeps_it_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_opting_out_leaves_it_running() -> None:
    with gc_paused(enabled=False):
        assert gc.isenabled()


def test_it_resumes_when_the_last_of_several_threads_leaves() -> None:
    inside, leave = threading.Barrier(3), threading.Event()

    def tick() -> None:
        with gc_paused():
            inside.wait()
            leave.wait()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    inside.wait()
    assert not gc.isenabled()
    leave.set()
    for thread in threads:
        thread.join()
    assert gc.isenabled()
