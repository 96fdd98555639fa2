"""`trace`: the path one object took through its machine, with the time of each step."""

from __future__ import annotations

from typing import Any

from persistence import SqlStore

from ..diagrams.trace import iso_time, path_of
from .inspect_views import coloured, locate


def trace_view(store: SqlStore, object_id: str) -> dict[str, Any]:
    """The states one object visited, numbered, and what happened to it without moving it.

    Events are reverts started, tasks retried, cancels and cleanups acted on.
    """
    found = locate(store, object_id)
    history = store.history(object_id)
    steps = path_of(history)
    status: str
    if found.command is not None:
        what, status = found.command.type, found.command.status
    else:
        what = found.task.verb if found.task else "task"
        status = found.task.status if found.task else (steps[-1].state if steps else "")
    return {
        "database": store.url, "id": object_id, "kind": found.kind, "type": what,
        "status": status, "root_id": found.root_id,
        "path": [{"step": s.number, "state": s.state, "at": s.time, "trigger": s.trigger,
                  "from": s.source} for s in steps],
        # What happened to it without moving it: reverts started, tasks retried,
        # cancels and cleanups acted on.
        "events": [{"at": iso_time(e.at), "event": e.trigger, "detail": e.detail}
                   for e in history if e.source == e.dest and e.source],
        "files": [],
    }


def render_trace(view: dict[str, Any]) -> str:
    """The path as numbered lines with their times, then the events, then files written."""
    lines = [f"{view['kind']} {view['type']} {view['id']}: {coloured(view['status'])}"]
    for step in view["path"]:
        came = f"{step['from']} --{step['trigger']}-->" if step["from"] else step["trigger"]
        lines.append(f"  {step['step']:>2}. {step['at'][11:23]}  {came} {coloured(step['state'])}")
    if view["events"]:
        lines.append("  events:")
        lines += [f"      {e['at'][11:23]}  {e['event']}: {e['detail'] or ''}".rstrip()
                  for e in view["events"]]
    lines += [f"wrote {path}" for path in view["files"]]
    return "\n".join(lines)
