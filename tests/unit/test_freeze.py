"""Freezing parameters is also checking that they are JSON, naming where they are not."""

from __future__ import annotations

import math
import re
from typing import NamedTuple

import pytest

from statemachines.core.records import freeze, to_json


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
