"""One history row per object per tick loses nothing: every step comes back, in its order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from persistence.history_rows import COLUMNS, expand, rows
from persistence.text_columns import storable
from statemachines.core import recorder as recorder_module
from statemachines.core.engine_view import EngineView
from statemachines.core.recorder import Changes, Recorder
from statemachines.core.records import (
    CommandRecord,
    ExecutionReason,
    HistoryEntry,
    HistoryPath,
    TaskRecord,
)

_STATES = st.sampled_from(["", "not_started", "executing", "waiting", "ended_failure"])
_TEXT = st.one_of(st.none(), st.text(max_size=12))  # NULs, quotes, backslashes, any Unicode
_PATHS = st.builds(
    HistoryPath, st.sampled_from(["command", "task"]), st.text(min_size=1, max_size=4),
    st.text(min_size=1, max_size=4), _STATES, st.floats(0, 2e9),
    st.lists(st.tuples(st.text(min_size=1, max_size=8), _STATES, _TEXT), min_size=1,
             max_size=5))


@given(st.lists(_PATHS, max_size=20))
def test_every_step_comes_back_in_order(history: list[HistoryPath]) -> None:
    stored = [dict(zip(COLUMNS, row, strict=True)) for row in rows(history)]
    back = list(expand(stored))  # type: ignore[arg-type]
    assert back == [e._replace(detail=storable(e.detail))
                    for path in history for e in path.entries()]


def _command(command_id: str) -> CommandRecord:
    return CommandRecord(command_id, "r", None, command_id, "T", ExecutionReason.REGULAR_FLOW, {})


def test_an_objects_steps_in_one_tick_share_a_path_while_they_follow_on() -> None:
    changes = Changes()
    recorder = Recorder(EngineView(), changes, 5.0)
    a, t = _command("a"), TaskRecord("t", "a", "r", "agent", "verb", {})
    recorder.history(a, "create", "", "not_started", "made")
    recorder.history(t, "create", "", "pending", None)
    recorder.history(a, "execute", "not_started", "executing", None)
    recorder.history(a, "executed", "executing", "waiting", None)
    recorder.history(a, "cancel", "ending", "ending", "not from where it stood: a new path")
    assert [(p.object_id, p.source, [s[0] for s in p.steps]) for p in changes.history] == [
        ("a", "", ["create", "execute", "executed"]), ("t", "", ["create"]),
        ("a", "ending", ["cancel"])]
    written = [dict(zip(COLUMNS, row, strict=True)) for row in rows(changes.history)]
    assert [(r["source"], r["dest"], r["trigger"], r["path"] is None) for r in written] == [
        ("", "waiting", "executed", False), ("", "pending", "create", True),
        ("ending", "ending", "cancel", True)]
    assert [e.source for e in expand(written)][:3] == ["", "not_started", "executing"]  # type: ignore[arg-type]


def test_a_spill_starts_new_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    spilled: list[list[HistoryPath]] = []
    changes = Changes()
    recorder = Recorder(EngineView(), changes, 5.0, spill=spilled.append)
    a = _command("a")
    monkeypatch.setattr(recorder_module, "HISTORY_CHUNK", 2)
    for trigger, source, dest in [("x", "", "s1"), ("y", "s1", "s2"), ("z", "s2", "s3")]:
        recorder.history(a, trigger, source, dest, None)
    assert [[p.steps for p in chunk] for chunk in spilled] == [[[("x", "s1", None),
                                                                 ("y", "s2", None)]]]
    assert [p.entries() for p in changes.history] == [
        [HistoryEntry("command", "a", "r", "z", "s2", "s3", 5.0)]]
