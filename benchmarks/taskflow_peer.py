"""OpenStack TaskFlow on the same scenario.

N copy tasks run in an unordered flow, persisted with TaskFlow's SQLAlchemy backend on a SQLite
file; one fails and TaskFlow reverts the others. Needs the `bench` extra
(`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from typing import Any

from .counting import peak_rss_mb


def available() -> bool:
    """Whether TaskFlow can be imported: without it, the comparison leaves TaskFlow out."""
    try:
        import taskflow  # noqa: F401
    except ImportError:
        return False
    return True


def run(count: int) -> dict[str, Any]:
    """One TaskFlow run of `count` copies, the middle one failing; `seconds` is the run only.

    It fails if any image is left after TaskFlow's revert, for then the figures mean nothing.
    """
    from taskflow import engines, task
    from taskflow.patterns import unordered_flow
    from taskflow.persistence import backends
    from taskflow.utils import persistence_utils

    images: set[int] = set()

    class CopyImage(task.Task):  # type: ignore[misc]
        def execute(self, index: int, fail: bool) -> None:
            if fail:
                raise RuntimeError(f"copy {index} failed")
            images.add(index)

        def revert(self, index: int, fail: bool, **kwargs: Any) -> None:
            images.discard(index)

    with tempfile.TemporaryDirectory() as folder:
        backend = backends.fetch({"connection": f"sqlite:///{folder}/taskflow.db"})
        with contextlib.closing(backend.get_connection()) as conn:
            conn.upgrade()
        flow = unordered_flow.Flow("vm")
        for i in range(count):
            flow.add(CopyImage(f"copy{i}", inject={"index": i, "fail": i == count // 2}))
        book, detail = persistence_utils.temporary_flow_detail(backend)
        engine = engines.load(flow, backend=backend, book=book, flow_detail=detail,
                              engine="serial")
        started = time.perf_counter()
        try:
            engine.run()
            status = "succeeded"
        except RuntimeError:
            status = "reverted"
        seconds = time.perf_counter() - started
    if images:
        raise SystemExit("TaskFlow left images behind: the figures mean nothing")
    return {"case": "TaskFlow", "database": "sqlite", "count": count, "seconds": seconds,
            "root_status": status, "peak_rss_mb": peak_rss_mb()}
