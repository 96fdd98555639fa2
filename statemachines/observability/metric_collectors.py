"""What is read when Prometheus scrapes, rather than counted as the engine goes.

A worker already keeps its totals (`Worker.totals`: outages, lost races) and the engine the
roots it holds and took over; copying them into metrics on every tick would add work, and a
hook, to the loop that must survive outages. The resources left `revert_failed` are the
database's to know: every worker, `cleanup` and the web view change them, so a count kept in
one process would drift. So these collectors read their values at each scrape, on the
scraping thread, and cost nothing in between.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..core.engine.engine import Engine
from ..core.engine.worker import Worker
from ..core.errors import EndactionError

log = logging.getLogger("endaction.metrics")

REVERT_FAILED = "endaction_revert_failed_resources"


class WorkerCollector:
    """The roots a worker holds and took over, and its outages and lost races."""

    def __init__(self, name: str, engine: Engine, worker: Worker | None = None) -> None:
        self.name = name
        self.engine = engine
        self.worker = worker

    def describe(self) -> Iterable[Metric]:
        """The families without values: the registry learns their names without a read."""
        return self._families(with_values=False)

    def collect(self) -> Iterable[Metric]:
        """The families with the engine's (and the worker's) values as of this scrape."""
        return self._families(with_values=True)

    def _families(self, with_values: bool) -> list[Metric]:
        label = [self.name]
        held = GaugeMetricFamily(
            "endaction_roots_held",
            "Roots this worker holds a lease on now (its share of the work).",
            labels=["worker"])
        taken = CounterMetricFamily(
            "endaction_lease_takeovers",
            "Roots already under way that this worker claimed from another worker (one "
            "that died, or gave them back as it stopped).", labels=["worker"])
        families: list[Metric] = [held, taken]
        if with_values:
            held.add_metric(label, self.engine.roots_held)
            taken.add_metric(label, self.engine.roots_taken_over)
        if self.worker is None:
            return families
        outages = CounterMetricFamily(
            "endaction_database_outages",
            "Ticks this worker lost to the database being unavailable (each retry during "
            "an outage counts once).", labels=["worker"])
        races = CounterMetricFamily(
            "endaction_lost_races",
            "Ticks this worker lost to another worker's transaction, or to a lease that "
            "lapsed (the tick is redone on a reloaded view).", labels=["worker"])
        if with_values:
            totals = self.worker.totals
            outages.add_metric(label, totals.outages)
            races.add_metric(label, totals.lost_races)
        return [*families, outages, races]


class RevertFailedCollector:
    """The resources left revert_failed, counted by `count` (a database query) per scrape.

    A scrape while the database is unavailable leaves the gauge out (and logs why): a stale
    or made-up count would be read as the truth, while a gap is what an outage looks like.
    """

    def __init__(self, count: Callable[[], int]) -> None:
        self.count = count

    def describe(self) -> Iterable[Metric]:
        """The gauge's family without a value, so that registering it runs no query."""
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        """The count as of this scrape, or no gauge at all while the database is unavailable."""
        try:
            value = self.count()
        except EndactionError as err:
            log.warning("%s left out of this scrape: %s", REVERT_FAILED, err)
            return []
        family = self._family()
        family.add_metric([], value)
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            REVERT_FAILED,
            "Resources left revert_failed: their revert failed for good, and they wait "
            "for `endaction cleanup` (read from the database at each scrape).")
