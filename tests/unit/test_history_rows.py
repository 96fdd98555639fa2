"""One history row per object per tick loses nothing: every entry comes back, in its order."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given
from hypothesis import strategies as st

from persistence.history_rows import COLUMNS, compact, expand
from persistence.text_columns import storable
from statemachines.core.records import HistoryEntry

_STATES = st.sampled_from(["", "not_started", "executing", "waiting", "ended_failure"])
_TEXT = st.one_of(st.none(), st.text(max_size=12))  # NULs, quotes, backslashes, any Unicode


@st.composite
def histories(draw: st.DrawFn) -> list[HistoryEntry]:
    """Interleaved objects, each mostly following on from its last step, sometimes not (a new
    moment, a step that does not leave from where the last one arrived)."""
    entries: list[HistoryEntry] = []
    where: dict[str, str] = {}
    for _ in range(draw(st.integers(0, 40))):
        object_id = draw(st.sampled_from(["a", "b", "c"]))
        follows = draw(st.booleans()) or draw(st.booleans())
        source = where.get(object_id, "") if follows else draw(_STATES)
        dest = draw(_STATES)
        where[object_id] = dest
        entries.append(HistoryEntry(
            draw(st.sampled_from(["command", "task"])), object_id, draw(st.sampled_from("rs")),
            draw(st.text(min_size=1, max_size=8)), source, dest,
            draw(st.sampled_from([1.0, 2.0])), draw(_TEXT)))
    return entries


def _by_object(entries: list[HistoryEntry]) -> dict[str, list[HistoryEntry]]:
    found: dict[str, list[HistoryEntry]] = defaultdict(list)
    for entry in entries:
        found[entry.object_id].append(entry)
    return dict(found)


@given(histories())
def test_every_entry_comes_back_in_its_objects_order(history: list[HistoryEntry]) -> None:
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in compact(history)]
    back = list(expand(rows))  # type: ignore[arg-type]
    stored = [e._replace(detail=storable(e.detail)) for e in history]
    assert _by_object(back) == _by_object(stored)


def test_an_objects_steps_in_one_tick_share_a_row_and_the_row_ends_where_it_ended() -> None:
    steps = [HistoryEntry("command", "a", "r", "create", "", "not_started", 5.0, "made"),
             HistoryEntry("task", "t", "r", "create", "", "pending", 5.0, None),
             HistoryEntry("command", "a", "r", "execute", "not_started", "executing", 5.0),
             HistoryEntry("command", "a", "r", "executed", "executing", "waiting", 5.0)]
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in compact(steps)]
    assert [(r["object_id"], r["source"], r["dest"], r["trigger"]) for r in rows] == [
        ("a", "", "waiting", "executed"), ("t", "", "pending", "create")]
    assert rows[1]["path"] is None  # one step: written as before, no JSON
    later = HistoryEntry("command", "a", "r", "claim_end", "waiting", "ending", 6.0)
    assert len(list(compact([*steps, later]))) == 3  # another moment is another row
