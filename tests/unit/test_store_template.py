"""Each property example's store is a copy of one created once per `open_store` function.

That one holds a fresh schema, the function's own ledgers, and whatever else it keeps in its folder.
"""

from __future__ import annotations

from pathlib import Path

from persistence import SqlStore, open_store
from statemachines import Store
from statemachines.testing.store_template import fresh_store


def test_each_open_store_function_has_a_template_of_its_own(tmp_path: Path) -> None:
    calls: list[str] = []

    def plain(folder: Path) -> Store:
        calls.append("plain")
        (folder / "agent-files").mkdir(exist_ok=True)
        (folder / "agent-files" / "kept").write_text("made when the store was")
        return open_store(str(folder / "a.db"))

    def other(folder: Path) -> Store:
        calls.append("other")
        return open_store(str(folder / "b.db"))

    stores = []
    for name, function in (("1", plain), ("2", plain), ("3", other)):
        folder = tmp_path / name
        folder.mkdir()
        stores.append(fresh_store(function, folder))
    try:
        # plain: once for its template, then once per example; other: the same, apart.
        assert calls == ["plain", "plain", "plain", "other", "other"]
        assert (tmp_path / "2" / "agent-files" / "kept").read_text() == "made when the store was"
        assert sorted(p.name for p in (tmp_path / "3").iterdir() if p.suffix == ".db") == ["b.db"]
        first, second = stores[0], stores[1]
        assert isinstance(first, SqlStore) and isinstance(second, SqlStore)
        assert first.url != second.url  # each example its own file, with the schema in it
        for folder in ("1", "2"):
            open_store(str(tmp_path / folder / "a.db"), create=False).dispose()
    finally:
        for store in stores:
            store.dispose()
