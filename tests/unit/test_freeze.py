"""Freezing parameters is also checking that they are JSON, naming where they are not."""

from __future__ import annotations

import math
import pickle
import re
from types import MappingProxyType
from typing import NamedTuple

import pytest

from statemachines.core.records.frozen_json import (
    SMALL_OBJECT_KEYS,
    FrozenMap,
    freeze,
    thaw,
    to_json,
)


class Point(NamedTuple):
    x: int
    y: int


def test_lists_tuples_and_their_subclasses_freeze_to_tuples() -> None:
    frozen = freeze({"at": Point(1, 2), "path": [["a", 1.5]]})
    assert frozen == {"at": (1, 2), "path": (("a", 1.5),)}
    assert to_json(frozen) == '{"at": [1, 2], "path": [["a", 1.5]]}'
    with pytest.raises(TypeError):
        frozen["at"] = 3  # type: ignore[index]


@pytest.mark.parametrize(("value", "where"), [
    ({"disks": [{"size": math.nan}]}, "parameters.disks[0].size: nan is not a finite"),
    ({"limit": -math.inf}, "parameters.limit: -inf is not a finite"),
    ({"tags": {1: "a"}}, "parameters.tags: key 1 is not a string"),
    ({"when": object()}, "parameters.when: object is not JSON data"),
])
def test_what_json_cannot_hold_is_refused_with_its_path(value: dict[str, object],
                                                         where: str) -> None:
    with pytest.raises((TypeError, ValueError), match=re.escape(where)):
        freeze(value)


def test_what_a_store_holds_is_read_back_as_it_is() -> None:
    assert math.isnan(freeze({"size": math.nan}, finite=False)["size"])


def test_small_objects_are_frozen_maps_that_share_their_keys() -> None:
    """A fan-out's 50,000 parameters objects name the same few keys: they share one tuple."""
    first, second = freeze({"image": "a", "vm": "v"}), freeze({"image": "b", "vm": "v"})
    assert isinstance(first, FrozenMap) and isinstance(second, FrozenMap)
    assert first._keys is second._keys
    plain = {"image": "a", "vm": "v"}
    assert first == plain and plain == first  # the dict on the left, too
    assert first != second and first != {"image": "a"}
    assert list(first) == ["image", "vm"] and len(first) == 2
    assert first.get("missing") is None and "vm" in first and "x" not in first
    with pytest.raises(KeyError, match="missing"):
        first["missing"]
    with pytest.raises(AttributeError, match="read-only"):
        first._values = ()  # type: ignore[misc]
    assert repr(first) == "FrozenMap({'image': 'a', 'vm': 'v'})"
    assert to_json(freeze({"b": 1, "a": {"c": [2]}})) == '{"b": 1, "a": {"c": [2]}}'
    assert pickle.loads(pickle.dumps(first)) == first
    assert thaw(freeze({"a": {"b": [1]}})) == {"a": {"b": [1]}}


def test_large_objects_stay_hashed() -> None:
    """A lookup in a FrozenMap scans its keys: past a few, a read-only dict is faster."""
    wide = freeze({f"k{i}": i for i in range(SMALL_OBJECT_KEYS + 1)})
    assert isinstance(wide, MappingProxyType)
    assert wide[f"k{SMALL_OBJECT_KEYS}"] == SMALL_OBJECT_KEYS
