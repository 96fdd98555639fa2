"""Python's cyclic garbage collector, paused while an engine works through a tick.

A tick of a 10,000-disk rollback allocates millions of objects while hundreds of thousands
of records are alive, and every few thousand allocations the collector walks them: about a
fifth of the run, for garbage that is almost all freed by reference counting anyway. The
engine pauses it for the span of a tick (or a recovery) and lets it run again after; the
cycles a tick makes (a handful: the tick and its recorder) are collected then.

The collector is one per process, so pausing is counted: with several engines in threads,
it resumes when the last of them leaves, and only if it was running when the first came in
(an application that turned it off keeps it off). `Engine(pause_gc=False)` opts out.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_resume = False


@contextmanager
def gc_paused(enabled: bool = True) -> Iterator[None]:
    """Keep the cyclic collector off for the span of the `with` block (a no-op if not `enabled`).

    Nested and concurrent pauses are counted: the collector resumes when the last one leaves,
    and only if it was running when the first came in.
    """
    global _depth, _resume
    if not enabled:
        yield
        return
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()
