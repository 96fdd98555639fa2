"""History segments lose nothing.

Every step comes back, in its order, and rows that schema 0005 and before wrote still read as they
did.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from persistence import history_rows, history_segments
from statemachines.core.records.records import (
    CommandRecord,
    ExecutionReason,
    HistoryEntry,
    HistoryPath,
    TaskRecord,
)
from statemachines.core.tick import recorder as recorder_module
from statemachines.core.tick.engine_view import EngineView
from statemachines.core.tick.recorder import Changes, Recorder

_STATES = st.sampled_from(["", "not_started", "executing", "waiting", "ended_failure"])
_TEXT = st.one_of(st.none(), st.text(max_size=12))  # NULs, quotes, backslashes, any Unicode
_PATHS = st.builds(
    HistoryPath, st.sampled_from(["command", "task"]), st.text(min_size=1, max_size=4),
    st.text(min_size=1, max_size=4), _STATES, st.floats(0, 2e9),
    st.lists(st.tuples(st.text(min_size=1, max_size=8), _STATES, _TEXT), min_size=1,
             max_size=5))


@given(st.lists(_PATHS, max_size=20))
def test_every_step_comes_back_in_order(history: list[HistoryPath]) -> None:
    """Per root, every object's steps in order, details exactly (NULs too: JSON escapes them)."""
    back = list(history_segments.expand_all(history_segments.rows(history, None)))
    for root in {p.root_id for p in history}:
        assert [e for e in back if e.root_id == root] == [
            e for path in history if path.root_id == root for e in path.entries()]
    assert len(back) == sum(len(path.steps) for path in history)


@given(st.lists(_PATHS, max_size=20), st.text(min_size=1, max_size=4))
def test_one_objects_steps_are_read_out_of_its_roots_segments(
        history: list[HistoryPath], wanted: str) -> None:
    back = list(history_segments.expand_all(history_segments.rows(history, None), wanted))
    assert back == [e for path in history if path.object_id == wanted for e in path.entries()]


# Ids and texts made of JSON's own punctuation: one object's entries are decoded out of the
# segment's text alone, so a quoted id inside a detail, or overlapping another string, must
# neither be taken for the object nor hide it.
_TRICKY_IDS = st.sampled_from(["a", ",", '"', "[", "\\", 'a"', '"a', ',"a', "command", '["', "]"])
_TRICKY_TEXT = st.lists(st.sampled_from(["a", ",", '"', "[", "]", "\\", "command", "task"]),
                        max_size=8).map("".join)
_TRICKY_PATHS = st.builds(
    HistoryPath, st.sampled_from(["command", "task"]), _TRICKY_IDS, st.just("r"),
    st.one_of(_TRICKY_IDS, _TRICKY_TEXT), st.just(1.0),
    st.lists(st.tuples(st.one_of(_TRICKY_IDS, _TRICKY_TEXT.filter(bool)), _TRICKY_TEXT,
                       st.one_of(st.none(), _TRICKY_TEXT)), min_size=1, max_size=4))


@given(st.lists(_TRICKY_PATHS, max_size=8), _TRICKY_IDS)
@example([HistoryPath("command", ",", "r", "a", 1.0, [("a", "a", None)])], ",")  # overlaps
def test_an_id_spelled_in_json_punctuation_is_found_exactly(
        history: list[HistoryPath], wanted: str) -> None:
    back = list(history_segments.expand_all(history_segments.rows(history, None), wanted))
    assert back == [e for path in history if path.object_id == wanted for e in path.entries()]


def test_a_tick_writes_one_row_per_root() -> None:
    paths = [HistoryPath("command", "r", "r", "", 5.0, [("create", "not_started", None)]),
             HistoryPath("command", "c", "r", "", 5.0, [("create", "not_started", "x")]),
             HistoryPath("command", "q", "q", "", 5.0, [("create", "not_started", None)]),
             HistoryPath("command", "q", "q", "ending", 7.0, [("hold", "ending", "fault")])]
    written = list(history_segments.rows(paths, None))
    assert [(root, at) for root, at, _, _ in written] == [("r", 5.0), ("q", 5.0), ("q", 7.0)]
    assert written[0][2] == ('[["command","r","",[["create","not_started",null]]],'
                             '["command","c","",[["create","not_started","x"]]]]')


def test_rows_of_schema_0005_and_before_read_as_they_were_written() -> None:
    """A row of one step (path NULL: every row before 0005) and a row holding a path."""
    columns = ("object_kind", "object_id", "root_id", "trigger", "source", "dest", "at",
               "detail", "path")
    old = [dict(zip(columns, row, strict=True)) for row in [
        ("command", "a", "r", "create", "", "not_started", 1.0, None, None),
        ("command", "a", "r", "executed", "not_started", "waiting", 2.0, "d",
         '[["execute","executing",null],["executed","waiting","d"]]')]]
    assert list(history_rows.expand(old)) == [  # type: ignore[arg-type]
        HistoryEntry("command", "a", "r", "create", "", "not_started", 1.0),
        HistoryEntry("command", "a", "r", "execute", "not_started", "executing", 2.0),
        HistoryEntry("command", "a", "r", "executed", "executing", "waiting", 2.0, "d")]


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
    back = list(history_segments.expand_all(history_segments.rows(changes.history, None)))
    assert [(e.object_id, e.source, e.dest) for e in back] == [
        ("a", "", "not_started"), ("a", "not_started", "executing"),
        ("a", "executing", "waiting"), ("t", "", "pending"), ("a", "ending", "ending")]


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
