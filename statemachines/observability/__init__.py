"""What a running engine shows outside itself: traces of the roots it ended (`tracing`), and
Prometheus metrics of its work, its agent calls and its task hosts (`metrics`).

Nothing here is needed to run the engine: it reads what the engine persisted, after the
fact, so it can never change what the engine does, and it costs nothing when no one
collects what it produces.
"""

from __future__ import annotations

from .metrics import EngineMetrics
from .metrics_http import HostMetrics, metrics_app
from .otel_env import TracingUnavailable, configure_tracing
from .tracing import RootTracer, traced

__all__ = ["EngineMetrics", "HostMetrics", "RootTracer", "TracingUnavailable",
           "configure_tracing", "metrics_app", "traced"]
