"""A fresh store for every example, made by copying one that was created once.

Creating a schema (its migrations, the ledgers' tables) costs a property run more than most of
its examples do, and shrinking a failure replays hundreds of them. So the scenario's
`open_store` runs once per run in a folder of its own, and every example starts from a copy of
that folder's files. A store that keeps nothing in the folder (a PostgreSQL scenario) copies
nothing, and its `open_store` makes it fresh each time as before.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..core.ports.store_protocol import Store

# Keyed by the function itself (held here, so no other function can take its id).
_templates: dict[Callable[[Path], Store], Path] = {}


def _template(open_store: Callable[[Path], Store]) -> Path:
    if open_store not in _templates:
        folder = Path(tempfile.mkdtemp(prefix="endaction-property-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        store = open_store(folder)
        store.dispose()
        _templates[open_store] = folder
    return _templates[open_store]


def fresh_store(open_store: Callable[[Path], Store], folder: Path) -> Store:
    """`open_store(folder)` over a copy of a store created once, schema and all.

    The copy holds whatever else `open_store` keeps in its folder, too.
    """
    shutil.copytree(_template(open_store), folder, dirs_exist_ok=True)
    return open_store(folder)
