"""DBOS Transact's side of `python -m benchmarks compare-dbos`.

It runs the same saga as benchmarks/saga_cases.py, written as DBOS's docs write one. The saga
is a `@DBOS.workflow` that calls one `@DBOS.step` per child (a copy, on an "agent" that answers
at once: a set in this process); when a step raises, the workflow's `except` block runs one
step per child that succeeded, newest first, to revert it (a removal), and re-raises, so the
workflow ends in ERROR (as endaction's root ends `ended_failure`). The fan-out case is one
workflow of N such steps by default, or (`--dbos-fanout queue`) N child workflows enqueued on
a queue and awaited, the docs' pattern for running children concurrently, its reverts
enqueued the same way.

Workers are processes that `DBOS.launch()` and dequeue from one queue; roots are enqueued by
a `DBOSClient` in one transaction (`enqueue_in_transaction`, as endaction's `submit_roots`
writes its batch in one), and the end is read from the system database's `workflow_status`.
Needs the `bench` extra (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSClient, DBOSConfig, EnqueueOptions

from .saga_cases import (
    END_POLL_SECONDS,
    FAILING_CHILD,
    LATENCY_POLL_SECONDS,
    WARM_ROOTS,
    Workers,
    announce_ready,
    cpu_per_root,
    fails,
    latency_figures,
    peak_rss_mb,
    postgres_cpu_seconds,
    say_stopped,
    status_poll,
    wait_until,
)

APP = "endaction_bench"
QUEUE = "saga"
CHILDREN_QUEUE = "saga_children"
#: The smallest polling interval this benchmark gives a queue ("tuned"): DBOS refuses only
#: zero and below, and documents 0.001 s as the floor of its other polling intervals.
TUNED_POLLING_SECONDS = 0.001
ENDED = ("SUCCESS", "ERROR")

#: The agent's storage: the images copied and not removed, in this process.
IMAGES: set[str] = set()


class CopyFailed(RuntimeError):
    """The agent's answer for a copy that fails."""


class _ExpectedFailure(logging.Filter):
    """Keeps DBOS's log of each workflow that raised out of the benchmark's output.

    DBOS logs every workflow that raises at ERROR with its traceback (about 60 lines); here a
    quarter of them raise on purpose, and the logging would be most of the output.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop the record of a workflow that raised in the background; let any other through."""
        return not record.getMessage().startswith("Exception encountered in background")


logging.getLogger("dbos").addFilter(_ExpectedFailure())


# --- the saga -------------------------------------------------------------------------------


@DBOS.step()
def copy_image(root: str, index: int, fail: bool) -> None:
    """The step that copies one disk, or raises CopyFailed instead when told to fail."""
    if fail:
        raise CopyFailed(f"copy of {root} disk {index} failed")
    IMAGES.add(f"{root}-disk{index}")


@DBOS.step()
def remove_image(root: str, index: int) -> None:
    """The step that reverts one copy: the image no longer exists, whether or not it did."""
    IMAGES.discard(f"{root}-disk{index}")


@DBOS.workflow()
def saga(root: str, k: int, fail_index: int) -> int:
    """K copies; on a failure, the copies that succeeded are removed and the error raised."""
    done: list[int] = []
    try:
        for index in range(k):
            copy_image(root, index, index == fail_index)
            done.append(index)
    except Exception:
        for index in reversed(done):
            remove_image(root, index)
        raise
    return k


@DBOS.workflow()
def copy_child(root: str, index: int, fail: bool) -> None:
    """One copy as a workflow of its own, so the queued fan-out can enqueue it as a child."""
    copy_image(root, index, fail)


@DBOS.workflow()
def remove_child(root: str, index: int) -> None:
    """One copy's revert as a workflow of its own, enqueued on the queue as the copies were."""
    remove_image(root, index)


@DBOS.workflow()
def fanout_queue(root: str, count: int, fail_index: int) -> int:
    """`count` child workflows on a queue, awaited, then the succeeded ones reverted.

    Every child is awaited, even after one has failed; the reverts are child workflows enqueued
    on the same queue, newest first, and once they have all ended the first error is raised.
    """
    handles = [DBOS.enqueue_workflow(CHILDREN_QUEUE, copy_child, root, i, i == fail_index)
               for i in range(count)]
    done: list[int] = []
    failure: Exception | None = None
    for index, handle in enumerate(handles):
        try:
            handle.get_result()
            done.append(index)
        except Exception as err:
            failure = failure or err
    if failure is None:
        return count
    undo = [DBOS.enqueue_workflow(CHILDREN_QUEUE, remove_child, root, i)
            for i in reversed(done)]
    for handle in undo:
        handle.get_result()
    raise failure


# --- set-up ---------------------------------------------------------------------------------


def _configure(url: str, executor: str | None = None) -> None:
    config = DBOSConfig(name=APP, system_database_url=url, log_level="WARNING")
    if executor is not None:
        config["executor_id"] = executor  # one per worker process, as DBOS__VMID would be
    DBOS(config=config)


def _sql_engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sa.create_engine(parsed)


def _fresh(url: str) -> None:
    """An empty system database: its schema dropped, then migrated again by DBOS itself.

    This runs before any worker starts, so that workers do not race to migrate it.
    """
    if url.startswith("postgresql"):
        engine = _sql_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA IF EXISTS dbos CASCADE"))
        engine.dispose()
    DBOS.migrate(url)


def _client(url: str, polling: float) -> DBOSClient:
    client = DBOSClient(system_database_url=url, application_name=APP)
    client.register_queue(QUEUE, polling_interval_sec=polling)
    return client


def _options(root: str) -> EnqueueOptions:
    return EnqueueOptions(workflow_name="saga", queue_name=QUEUE, workflow_id=root)


def _fail_index(i: int) -> int:
    return FAILING_CHILD if fails(i) else -1


def serve(url: str, name: str, variant: str = "defaults") -> None:
    """One worker process: DBOS launched under its own executor id, dequeuing `saga` until SIGTERM.

    It dequeues from the queue the parent registered. (`variant` needs nothing here: it is the
    queue's polling interval, which the parent wrote with the queue.)
    """
    _configure(url, executor=name)
    DBOS.launch()
    # The queue exists before launch, so the queue thread starts its poller at once; give it
    # that first poll before saying ready.
    time.sleep(0.5)
    stop = announce_ready()
    stop.wait()
    DBOS.destroy(workflow_completion_timeout_sec=0)
    say_stopped(images=len(IMAGES))


def _worker_command(url: str, variant: str) -> Callable[[str], list[str]]:
    return lambda name: [sys.executable, "-m", "benchmarks", "saga-worker", "dbos",
                         "--db", url, "--name", name, "--variant", variant]


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT status, count(*) FROM dbos.workflow_status "
                                    "WHERE queue_name = :q GROUP BY status"), {"q": QUEUE})
        return {str(status): int(n) for status, n in rows}


def _check(roots: int, k: int, counts: dict[str, int], images: int) -> int:
    expected = sum(fails(i) for i in range(roots))
    failed = counts.get("ERROR", 0)
    if failed != expected or counts.get("SUCCESS", 0) != roots - expected \
            or images != k * (roots - expected):
        raise SystemExit(f"DBOS: statuses {counts} (expected {expected} ERROR), {images} "
                         f"image(s) left (expected {k * (roots - expected)})")
    return failed


# --- the cases ------------------------------------------------------------------------------


def throughput(url: str, workers: int, roots: int, k: int) -> dict[str, Any]:
    """Roots/s of `workers` DBOS processes on one queue.

    The time runs from the enqueue of every root (one transaction) until every workflow is
    SUCCESS or ERROR in the system database.
    """
    _fresh(url)
    client = _client(url, polling=1.0)  # Queue's default polling_interval_sec
    engine = _sql_engine(url)
    try:
        with Workers(_worker_command(url, "defaults"), workers) as running:
            time.sleep(1)
            postgres_before = postgres_cpu_seconds()
            started = time.perf_counter()
            with engine.begin() as conn:
                for i in range(roots):
                    client.enqueue_in_transaction(conn, _options(f"vm{i}"), f"vm{i}", k,
                                                  _fail_index(i))
            submitted = time.perf_counter() - started
            wait_until(lambda: sum(_counts(engine).get(s, 0) for s in ENDED) == roots,
                       END_POLL_SECONDS, f"DBOS, {workers} worker(s)")
            seconds = time.perf_counter() - started
            postgres_after = postgres_cpu_seconds()
            said = running.stop()
        failed = _check(roots, k, _counts(engine), sum(s.get("images", -1) for s in said))
        with engine.connect() as conn:
            # Which worker ran how many: the first to poll takes every root it finds.
            shares = {str(executor): int(n) for executor, n in conn.execute(sa.text(
                "SELECT executor_id, count(*) FROM dbos.workflow_status "
                "WHERE queue_name = :q GROUP BY executor_id"), {"q": QUEUE})}
    finally:
        engine.dispose()
        client.destroy()
    return {"side": "dbos", "case": "throughput", "database": "postgresql",
            "workers": workers, "roots": roots, "k": k, "seconds": seconds,
            "submit_seconds": submitted, "roots_per_s": roots / seconds, "failed": failed,
            "roots_per_worker": shares,
            **cpu_per_root(said, (postgres_before, postgres_after), roots)}


def sqlite(roots: int, k: int) -> dict[str, Any]:
    """Roots/s of DBOS in this process on a SQLite system database.

    Every root is started with DBOS.start_workflow, then every handle awaited, both timed.
    """
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'dbos.sqlite'}"
        _configure(url)
        DBOS.launch()
        try:
            started = time.perf_counter()
            handles = [DBOS.start_workflow(saga, f"vm{i}", k, _fail_index(i))
                       for i in range(roots)]
            failed = 0
            for handle in handles:
                try:
                    handle.get_result()
                except CopyFailed:
                    failed += 1
            seconds = time.perf_counter() - started
        finally:
            DBOS.destroy()
    _check(roots, k, {"ERROR": failed, "SUCCESS": roots - failed}, len(IMAGES))
    return {"side": "dbos", "case": "sqlite", "database": "sqlite", "roots": roots, "k": k,
            "seconds": seconds, "roots_per_s": roots / seconds, "failed": failed,
            "peak_rss_mb": peak_rss_mb()}


def latency(url: str, variant: str, runs: int) -> dict[str, Any]:
    """Time one K=2 root from its enqueue to its end, on an idle worker, `runs` times.

    Each root is one that succeeds; its status is polled every millisecond until it has ended,
    and WARM_ROOTS untimed ones go first. "tuned" is the queue polled every
    TUNED_POLLING_SECONDS instead of every second.
    """
    _fresh(url)
    client = _client(url, polling=TUNED_POLLING_SECONDS if variant == "tuned" else 1.0)
    engine = _sql_engine(url)
    try:
        with Workers(_worker_command(url, variant), 1):
            time.sleep(1)
            ended = status_poll(engine, "SELECT status FROM dbos.workflow_status "
                                "WHERE workflow_uuid = :id", ENDED)
            samples: list[float] = []
            for n in range(WARM_ROOTS + runs):
                root = f"vm{4 * n + 1}"  # never a failing one
                started = time.perf_counter()
                client.enqueue(_options(root), root, 2, -1)
                wait_until(partial(ended, root), LATENCY_POLL_SECONDS, "DBOS latency")
                if n >= WARM_ROOTS:
                    samples.append(time.perf_counter() - started)
    finally:
        engine.dispose()
        client.destroy()
    return {"side": "dbos", "case": "latency", "variant": variant, **latency_figures(samples)}


def fanout(count: int, url: str | None, how: str = "steps") -> dict[str, Any]:
    """One workflow of `count` children, the middle one failing and the succeeded ones reverted.

    It runs in this process, on SQLite (url None) or PostgreSQL.
    """
    with tempfile.TemporaryDirectory() as folder:
        url = url or f"sqlite:///{Path(folder) / 'dbos.sqlite'}"
        _fresh(url)
        _configure(url)
        DBOS.launch()
        try:
            if how == "queue":
                DBOS.register_queue(CHILDREN_QUEUE)
                time.sleep(1.5)  # the queue thread looks for new queues every second
            started = time.perf_counter()
            flow = fanout_queue if how == "queue" else saga
            handle = DBOS.start_workflow(flow, "vm", count, count // 2)
            try:
                handle.get_result()
                status = "SUCCESS"
            except CopyFailed:
                status = "ERROR"
            seconds = time.perf_counter() - started
        finally:
            DBOS.destroy()
    if IMAGES or status != "ERROR":
        raise SystemExit(f"DBOS fan-out: {status}, {len(IMAGES)} image(s) left behind")
    return {"side": "dbos", "case": "fanout", "how": how,
            "database": "sqlite" if url.startswith("sqlite") else "postgresql",
            "count": count, "seconds": seconds, "peak_rss_mb": peak_rss_mb(),
            "root_status": status}


def version() -> str:
    """The installed DBOS's version, for the machine line of the report."""
    from importlib.metadata import version as installed

    return installed("dbos")
