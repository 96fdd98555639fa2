"""What a running engine shows outside itself.

It shows traces of the roots it ended (`tracing`), and Prometheus metrics of its work, its
agent calls and its task hosts (`metrics`).

Nothing here is needed to run the engine: it reads what the engine persisted, after the
fact, so it can never change what the engine does, and it costs nothing when no one
collects what it produces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .metrics import EngineMetrics
from .otel_env import TracingUnavailable, configure_tracing
from .tracing import RootTracer, traced

if TYPE_CHECKING:
    from .metrics_http import HostMetrics, metrics_app


def __getattr__(name: str) -> Any:
    """`HostMetrics` and `metrics_app` are served over HTTP: imported on first use.

    A worker traces and counts without the `http` extra; serving the counts needs it, and
    asking for these without it raises `MissingExtra` naming the extra.
    """
    if name in ("HostMetrics", "metrics_app"):
        from . import metrics_http

        return getattr(metrics_http, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["EngineMetrics", "HostMetrics", "RootTracer", "TracingUnavailable",
           "configure_tracing", "metrics_app", "traced"]
