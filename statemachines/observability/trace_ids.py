"""Trace and span ids derived from the ids of the roots, commands and tasks they show.

A root's trace is built from the database, by whichever process happens to end the root:
the one that submitted it, a worker that took it over, `endaction resume` after a crash.
Deriving the ids from the records makes every such build the same trace, found by the root's
id: the trace id *is* the root id (the engine's ids are 32 hex digits, 128 bits, like a trace
id), and every span id is a hash of its command's or task's id.

The OpenTelemetry API lets no caller choose a span's ids; only the SDK's id generator does.
So when the tracer is the SDK's, its id generator is wrapped by one that hands out planned
ids while `planned` is in effect (and the SDK's own ids at every other time). With any other
tracer the root span is made the child of a remote parent whose trace id is the root id: the
trace id still holds, but the root span then shows a parent no one ever sends, which is why
that is only the fallback.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from opentelemetry import context as context_api
from opentelemetry import trace

_HEX_128 = re.compile(r"[0-9a-f]{32}")
#: (trace id, span id) the next span started in this context gets, if the tracer is wrapped.
_PLANNED: ContextVar[tuple[int, int] | None] = ContextVar("endaction_planned_ids",
                                                          default=None)


def trace_id_of(root_id: str) -> int:
    """The root id as a trace id: read as 128 bits when it is 32 hex digits, hashed otherwise.

    The engine's own ids are 32 hex digits; ids made by `Engine(ids=...)` may be anything.
    """
    if _HEX_128.fullmatch(root_id) and int(root_id, 16) != trace.INVALID_TRACE_ID:
        return int(root_id, 16)
    return _hashed(root_id, 16)


def span_id_of(object_id: str) -> int:
    """64 bits of a hash of a command's or task's id: the same span in every build."""
    return _hashed(object_id, 8)


def _hashed(text: str, size: int) -> int:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=size,
                             person=b"endaction-otel").digest()
    return int.from_bytes(digest, "big") or 1  # 0 is the invalid id


def plan_ids(tracer: trace.Tracer) -> bool:
    """Make `tracer` take planned ids, if it is the SDK's; whether it does now."""
    try:
        from ._sdk_ids import wrap_sdk_tracer
    except ImportError:  # no SDK: whatever tracer this is, it is not the SDK's
        return False
    return wrap_sdk_tracer(tracer, _PLANNED)


@contextmanager
def planned(trace_id: int, span_id: int) -> Iterator[None]:
    """The ids of the one span started inside (on a tracer `plan_ids` wrapped)."""
    token = _PLANNED.set((trace_id, span_id))
    try:
        yield
    finally:
        _PLANNED.reset(token)


def remote_parent(trace_id: int, root_id: str) -> context_api.Context:
    """The fallback's context for a root span: a remote parent that carries the trace id."""
    parent = trace.SpanContext(trace_id=trace_id, span_id=_hashed(f"parent of {root_id}", 8),
                               is_remote=True,
                               trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
    return trace.set_span_in_context(trace.NonRecordingSpan(parent), context_api.Context())
