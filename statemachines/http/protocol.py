"""The wire format both sides share: paths, limits, and a task report as JSON.

A report is `{"status": ..., "result": ..., "message": ..., "output": ...}` with the values of
`HostStatus` and `HostResult`, and, with an end, the JSON the task returned (absent or null
when none); anything else a host sends for a task is garbage, which the engine ends as
`unknown` with what was received.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from ..core.machines.host_status import HostResult, HostStatus, TaskReport
from ..core.records.frozen_json import thaw

PROTOCOL_VERSION = 1
PREFIX = f"/v{PROTOCOL_VERSION}"
# Engine-generated ids are 32 hex digits; hosts accept a little more, never a path.
TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_BODY_BYTES = 1 << 20  # a request body larger than this is refused (413)
MAX_POLL_IDS = 10_000  # task ids in one poll request
MAX_MESSAGE = 2000  # characters of a report's message kept from a host
#: Task ids the engine asks about in one poll request: an answer may carry an output of up to
#: 64 KiB per task (`Limits.max_output_bytes`'s default), and 250 of those fit the 16 MiB
#: the engine reads of one answer.
POLL_CHUNK = 250


def report_to_json(report: TaskReport) -> dict[str, Any]:
    """A task's report as a host sends it: status, result and message, and its output if any.

    The output is thawed to plain dicts and lists, as the json module writes them.
    """
    found: dict[str, Any] = {"status": str(report.status), "result": str(report.result),
                             "message": report.message}
    if report.output is not None:
        # As the json module writes it: an agent may hand back frozen mappings and tuples.
        found["output"] = thaw(report.output)
    return found


def report_from_json(task_id: str, entry: object) -> TaskReport:
    """A host's report of one task; garbage becomes `unknown`, saying what was received.

    Its output is passed on as it came: the engine judges it (strict JSON, its size).
    """
    if isinstance(entry, dict):
        try:
            return TaskReport(HostStatus(str(entry.get("status"))),
                              HostResult(str(entry.get("result", HostResult.UNKNOWN))),
                              str(entry.get("message") or "")[:MAX_MESSAGE],
                              entry.get("output"))
        except ValueError:
            pass
    return TaskReport.unknown(f"the host answered garbage for task {task_id}: "
                              f"{json.dumps(entry, default=repr)[:200]}")


@cache
def openapi_document() -> dict[str, Any]:
    """The protocol as OpenAPI 3.1, as every host serves it at `/openapi.json`."""
    text = resources.files(__package__).joinpath("openapi.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document
