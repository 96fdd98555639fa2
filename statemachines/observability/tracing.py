"""OpenTelemetry traces of roots, built from the database when a root ends.

The engine's work on one root is spread over ticks, processes and crashes: a span held open
in memory from submit to end would die with the first process that crashed, and a worker that
took the root over would start a new trace. So no span is opened while the engine runs.
When a tick commits the end of a root (`TickReport.ended_roots`), `RootTracer` reads the
root's tree and history back and emits its whole trace at once, with the times the records
hold. Whichever process ends the root emits the same trace, under the root's id (see
`trace_ids`), and a crash in between is only what the history says of it.

Tracing costs nothing unless someone collects it: with the API's default (no-op) provider,
or a sampler that drops the root, nothing beyond the root's own row is read. Use it as::

    from statemachines.observability import RootTracer
    engine = Engine(store, agents, registry, on_commit=RootTracer(store))

with an SDK `TracerProvider` set globally (or passed as `tracer_provider=`). A trace is
emitted at most once, when its root ends; one whose process died between the commit and
the export can be emitted again with `RootTracer(store).export(root_id)`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from opentelemetry import trace

from .. import __version__
from ..core.ports.store_protocol import Store
from ..core.records.records import CommandRecord
from ..core.records.tick_report import TickReport
from .trace_ids import plan_ids
from .trace_tree import SpanMaker, emit_children, finish_root, start_root_span

log = logging.getLogger("endaction.traces")

#: Trees with more commands and tasks than this get a root span only (with their counts):
#: building 400,000 spans of a 100,000-disk root would stall the tick that ended it, and an
#: SDK's batch queue (2,048 spans by default) would drop most of them anyway.
DEFAULT_MAX_SPANS = 10_000
TRACER_NAME = "endaction"
OnCommit = Callable[[TickReport], None]


class RootTracer:
    """An `Engine(on_commit=...)` callback that emits the trace of every root the tick ended.

    Args:
        store: the engine's store, read back once a root has ended.
        tracer_provider: where spans go; None: the global provider, looked up at each end
            (so one set after the engine was made is used).
        max_spans: the largest tree traced span by span; a larger one gets its root span
            only, with `endaction.trace.spans_left_out`.

    A failure to read or emit is logged and never reaches the engine: tracing must not stop
    the work it watches.
    """

    def __init__(self, store: Store, tracer_provider: trace.TracerProvider | None = None,
                 *, max_spans: int = DEFAULT_MAX_SPANS) -> None:
        self.store = store
        self.tracer_provider = tracer_provider
        self.max_spans = max_spans
        self._cached: tuple[trace.TracerProvider, trace.Tracer, bool] | None = None

    def __call__(self, report: TickReport) -> None:
        """Emit the trace of each root that ended in the tick; a failure is only logged."""
        for root_id in report.ended_roots:
            try:
                self.export(root_id)
            except Exception as err:
                log.warning("the trace of root %s was not emitted: %s: %s", root_id,
                            type(err).__name__, err)

    @property
    def enabled(self) -> bool:
        """Whether a provider that records is there: if not, ending roots costs nothing."""
        return self._tracer() is not None

    def export(self, root_id: str) -> int:
        """Emit the trace of `root_id` as the database holds it now; return how many spans.

        It is 0 when nothing records, the sampler dropped it, or there is no such root.
        """
        found = self._tracer()
        if found is None:
            return 0
        tracer, planned_ids = found
        root = self.store.command(root_id)
        if root is None or root.parent_id is not None:
            log.warning("no trace for %s: it is not a root in %s", root_id, self._where())
            return 0
        maker = SpanMaker(tracer, root.id, planned_ids)
        span = start_root_span(maker, root)
        if not span.is_recording():
            return 0  # sampled out: the tree is not read at all
        commands, tasks = self.store.tree(root.id)
        if len(commands) + len(tasks) > self.max_spans:
            return self._root_only(span, root, len(commands), len(tasks))
        history = self.store.history_of_root(root.id)
        mine = [row for row in history if row.object_id == root.id]
        finish_root(span, root, mine)
        return 1 + emit_children(maker, root, span, commands, tasks, history)

    def _root_only(self, span: trace.Span, root: CommandRecord, commands: int,
                   tasks: int) -> int:
        span.set_attributes({"endaction.trace.commands": commands,
                             "endaction.trace.tasks": tasks,
                             "endaction.trace.spans_left_out": commands - 1 + tasks})
        finish_root(span, root, self.store.history(root.id))
        log.info("root %s: %d commands and %d tasks, over max_spans %d: its root span only",
                 root.id, commands, tasks, self.max_spans)
        return 1

    def _tracer(self) -> tuple[trace.Tracer, bool] | None:
        """The tracer, and whether it takes planned ids; None while nothing records."""
        provider = self.tracer_provider or trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            return None  # the API's default: nobody configured an SDK
        if self._cached is None or self._cached[0] is not provider:
            tracer = trace.get_tracer(TRACER_NAME, __version__, tracer_provider=provider)
            self._cached = (provider, tracer, plan_ids(tracer))
        _, tracer, planned_ids = self._cached
        if isinstance(tracer, trace.NoOpTracer):
            return None  # an SDK turned off (OTEL_SDK_DISABLED)
        return tracer, planned_ids

    def _where(self) -> str:
        return str(getattr(self.store, "url", "this database"))


def traced(store: Store, on_commit: OnCommit | None = None,
           tracer_provider: trace.TracerProvider | None = None) -> OnCommit | None:
    """`on_commit` with a `RootTracer` in front, when a provider records now.

    Otherwise it is `on_commit` itself, so a process that collects no traces runs exactly as
    without.

    The tracer goes first: a callback after it may end the process (the demo's
    `--crash-after`), and the trace of a root that ended in that tick is then out already.
    """
    tracer = RootTracer(store, tracer_provider)
    if not tracer.enabled:
        return on_commit
    if on_commit is None:
        return tracer
    then = on_commit

    def both(report: TickReport) -> None:
        tracer(report)
        then(report)

    return both
