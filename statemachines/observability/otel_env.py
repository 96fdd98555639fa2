"""A tracer provider from the standard OTEL_* environment variables, for the CLI's processes.

`endaction worker`, `demo`, `resume` and `cleanup` are processes nobody wraps in code, so the
way to ask them for traces is the one every OpenTelemetry SDK reads: OTEL_TRACES_EXPORTER
(`otlp`, `console`, or any exporter installed under that entry point), with
OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, OTEL_BSP_* and the rest
read by the SDK itself. A provider already set in the process (by `opentelemetry-instrument`,
or by the application's module) is left as it is. Asking for traces without the SDK is refused
by name rather than ignored: nobody finds out that traces are missing until they need one.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import trace

from ..core.errors import EndactionError

log = logging.getLogger("endaction.traces")

EXPORTER_VARIABLE = "OTEL_TRACES_EXPORTER"
INSTALL_HINT = "pip install 'endaction[otel]'"
_ENTRY_POINTS = "opentelemetry_traces_exporter"
#: OTEL_EXPORTER_OTLP_PROTOCOL values, and the entry point of each one's exporter. The
#: specification's default is http/protobuf, which is what the `otel` extra installs.
_OTLP_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}
_OTLP_PACKAGES = {"otlp_proto_http": "opentelemetry-exporter-otlp-proto-http",
                  "otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc"}

_configured: list[str] | None = None
_lock = threading.Lock()


class TracingUnavailable(EndactionError):
    """The environment asks for traces this installation cannot produce."""


def configure_tracing() -> list[str]:
    """Set the global tracer provider from the environment, once per process.

    Returns the exporters it sends to (empty: no traces asked for, or a provider was already
    set). Until it has set one, every call reads the environment again (tests change it
    within one process).
    """
    global _configured
    with _lock:
        if _configured is None:
            names = _configure()
            if names:
                _configured = names
            return names
        return list(_configured)


def _configure() -> list[str]:
    names = _exporter_names()
    if not names or os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        log.info("traces: using the tracer provider already set in this process")
        return []
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        raise TracingUnavailable(
            f"{EXPORTER_VARIABLE}={os.environ[EXPORTER_VARIABLE]} asks for traces, but the "
            f"OpenTelemetry SDK is not installed: {INSTALL_HINT} (or unset "
            f"{EXPORTER_VARIABLE})") from None
    exporters = [(name, _exporter(name)) for name in names]
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "endaction"}))
    provider = TracerProvider(resource=resource)  # sampler and limits from OTEL_* too
    for name, exporter in exporters:
        # The console's lines should come as spans end, in order with the progress lines.
        processor = SimpleSpanProcessor if name == "console" else BatchSpanProcessor
        provider.add_span_processor(processor(exporter))
    trace.set_tracer_provider(provider)  # flushed and shut down at exit by the SDK
    log.info("traces of ended roots go to %s", ", ".join(names))
    return names


def _exporter_names() -> list[str]:
    """OTEL_TRACES_EXPORTER's names, `otlp` resolved by OTEL_EXPORTER_OTLP(_TRACES)_PROTOCOL."""
    text = os.environ.get(EXPORTER_VARIABLE, "").strip()
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or [name.lower() for name in names] == ["none"]:
        return []
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip()
    resolved = []
    for name in names:
        if name == "otlp":
            if protocol not in _OTLP_BY_PROTOCOL:
                raise TracingUnavailable(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not one this SDK exports "
                    f"traces with (use {' or '.join(_OTLP_BY_PROTOCOL)})")
            name = _OTLP_BY_PROTOCOL[protocol]
        if name != "none":
            resolved.append(name)
    return resolved


def _exporter(name: str) -> Any:
    """An exporter by its entry point name, built from the environment as the SDK builds it.

    The console's writes to stderr, as it must not mix spans into a command's report.
    """
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)
    found = list(entry_points(group=_ENTRY_POINTS, name=name))
    if not found:
        package = _OTLP_PACKAGES.get(name)
        hint = f"pip install {package}" if package else \
            f"the exporters installed are: {', '.join(_installed()) or 'none'}"
        raise TracingUnavailable(f"{EXPORTER_VARIABLE} names exporter {name!r}, which is not "
                                 f"installed ({hint})")
    try:
        return found[0].load()()
    except Exception as err:
        raise TracingUnavailable(f"traces exporter {name!r} could not be made: "
                                 f"{type(err).__name__}: {err}") from err


def _installed() -> list[str]:
    return sorted({"console", *(point.name for point in entry_points(group=_ENTRY_POINTS))})
