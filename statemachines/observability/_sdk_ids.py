"""The SDK's side of planned span ids.

It is imported only where the SDK is installed (the `otel` extra), so that the package runs on
the API alone.
"""

from __future__ import annotations

from contextvars import ContextVar

from opentelemetry import trace
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.id_generator import IdGenerator


class PlannedIds(IdGenerator):
    """Planned ids while a plan is in effect, the wrapped generator's otherwise.

    The tracer it is put on may be shared by code that starts spans of its own.
    """

    def __init__(self, wrapped: IdGenerator, plan: ContextVar[tuple[int, int] | None]) -> None:
        self.wrapped = wrapped
        self.plan = plan

    def generate_span_id(self) -> int:
        planned = self.plan.get()
        return self.wrapped.generate_span_id() if planned is None else planned[1]

    def generate_trace_id(self) -> int:
        planned = self.plan.get()
        return self.wrapped.generate_trace_id() if planned is None else planned[0]

    def is_trace_id_random(self) -> bool:
        # Ids from `Engine(ids=...)` may be sequential: claim no randomness for them.
        return self.plan.get() is None and self.wrapped.is_trace_id_random()


def wrap_sdk_tracer(tracer: trace.Tracer, plan: ContextVar[tuple[int, int] | None]) -> bool:
    if not isinstance(tracer, SdkTracer):
        return False
    current = getattr(tracer, "id_generator", None)
    if isinstance(current, PlannedIds):
        return True
    if not isinstance(current, IdGenerator):
        return False  # an SDK whose tracer keeps its generator elsewhere: use the fallback
    tracer.id_generator = PlannedIds(current, plan)
    return True
