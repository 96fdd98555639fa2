"""JSON data as records hold it: frozen (read-only all the way down), checked on the way in.

Every command's and task's parameters, and every output, is frozen once where it enters (a
hook, a submit, a row read back), so that nothing can rewrite what another command reads
(oVirt shared one mutable parameters object between a command and its children). A
10,000-disk rollback holds 50,000 of these objects at once, so their shape is chosen for
memory: small objects are `FrozenMap`s whose key tuples are shared, not dicts of their own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

#: Objects with more keys than this are a read-only view of a dict: a lookup in a
#: `FrozenMap` scans its keys, which stays cheaper than hashing only while they are few.
SMALL_OBJECT_KEYS = 8
# Key tuples shared between the `FrozenMap`s that have the same keys in the same order, up
# to this many distinct ones (beyond it, a map keeps its own tuple: memory, not correctness).
_SHARED_KEY_SETS = 4096
_key_sets: dict[tuple[str, ...], tuple[str, ...]] = {}


class FrozenMap(Mapping[str, Any]):
    """A small read-only JSON object, in less than half the memory of a read-only dict.

    It takes about 100 bytes where a `MappingProxyType` over a dict of the same few keys takes
    220, which is 6 MB for a 10,000-disk rollback.

    Its keys are one tuple shared by every map with the same keys (the children of a fan-out
    all name the same few), its values a tuple of its own. It compares equal to any mapping
    with the same items, like the dict it stands for, and refuses writes.
    """

    __slots__ = ("_keys", "_values")

    _keys: tuple[str, ...]
    _values: tuple[Any, ...]

    def __init__(self, items: Mapping[str, Any]) -> None:
        keys = tuple(items)
        shared = _key_sets.get(keys)
        if shared is None:
            shared = keys
            if len(_key_sets) < _SHARED_KEY_SETS:
                _key_sets[keys] = keys
        object.__setattr__(self, "_keys", shared)
        object.__setattr__(self, "_values", tuple(items.values()))

    def __getitem__(self, key: str) -> Any:
        """The value of `key`, found by a scan of the few keys; KeyError as a dict raises it."""
        try:
            return self._values[self._keys.index(key)]
        except ValueError:
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        """Whether `key` is one of its keys, by a scan of the shared key tuple."""
        return key in self._keys

    def __iter__(self) -> Iterator[str]:
        """Its keys, in the order the object had them when it was frozen."""
        return iter(self._keys)

    def __len__(self) -> int:
        """How many keys it has."""
        return len(self._keys)

    def __setattr__(self, name: str, value: object) -> None:
        """Refuse every attribute write: nothing may rewrite what another command reads."""
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __repr__(self) -> str:
        """The text a debugger or log shows: the class name around its items as a dict."""
        return f"{type(self).__name__}({self.as_dict()!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle it as its items, rebuilt through `__init__` (its slots refuse plain setting)."""
        return FrozenMap, (self.as_dict(),)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict of its items (one level: nested values stay frozen)."""
        return dict(zip(self._keys, self._values, strict=True))


def freeze(parameters: Mapping[str, Any], finite: bool = True) -> Mapping[str, Any]:
    """A deep, read-only copy of JSON data, as the store will keep it.

    Anything JSON cannot hold raises TypeError or ValueError (naming where), NaN and infinities
    included (unless `finite` is False: what a store already holds is read back as it is).

    One walk instead of a JSON round trip, and the check that the data is JSON at the same
    time: it runs for every command and task created or loaded, 40,000 times for a
    10,000-disk VM. The path to a bad value is only worked out once one is found.
    """
    try:
        frozen: Mapping[str, Any] = _freeze(parameters, finite)
    except (TypeError, ValueError):
        _explain(parameters, "parameters", finite)
        raise
    return frozen


_SCALARS = (str, int, bool, type(None))
_INFINITIES = (math.inf, -math.inf)


def _freeze(value: Any, finite: bool) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if finite and (value != value or value in _INFINITIES):
            raise ValueError("not a finite number")
        return value
    if kind is dict or kind is FrozenMap or kind is MappingProxyType or isinstance(value,
                                                                                Mapping):
        return _freeze_mapping(value, finite)
    if kind is list or kind is tuple or isinstance(value, list | tuple):
        return tuple([_freeze(item, finite) for item in value])
    if isinstance(value, _SCALARS):  # str and int subclasses (enums)
        return value
    if isinstance(value, float):
        return _freeze(float(value), finite)
    raise TypeError(f"{kind.__name__} is not JSON data")


def _freeze_mapping(value: Mapping[Any, Any], finite: bool) -> Mapping[str, Any]:
    frozen = {}
    for key, item in value.items():
        if type(key) is not str and not isinstance(key, str):
            raise TypeError("a key is not a string")
        frozen[key] = _freeze(item, finite)
    if len(frozen) <= SMALL_OBJECT_KEYS:
        return FrozenMap(frozen)
    return MappingProxyType(frozen)


def _explain(value: Any, where: str, finite: bool) -> None:
    """Raise for the first value `_freeze` refuses, naming its path."""
    if finite and isinstance(value, float) and (value != value or value in _INFINITIES):
        raise ValueError(f"{where}: {value} is not a finite number (JSON has no NaN or infinity)")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: key {key!r} is not a string")
            _explain(item, f"{where}.{key}", finite)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _explain(item, f"{where}[{i}]", finite)
    elif not isinstance(value, (*_SCALARS, float)):
        raise TypeError(f"{where}: {type(value).__name__} is not JSON data")


def freeze_output(value: Any, limit: int) -> Any:
    """An output (a task's, from its agent; a command's, from a hook) as the store keeps it.

    That is frozen, strict JSON, at most `limit` bytes of JSON text. Anything else raises
    ValueError naming what is wrong: an output feeds the next step, so one that cannot be kept
    must not pass.
    """
    try:
        frozen = freeze({"output": value})["output"]
    except (TypeError, ValueError) as err:
        raise ValueError(f"it is not strict JSON ({str(err).replace('parameters.', '')})"
                         ) from None
    except RecursionError:
        raise ValueError("it is nested too deeply") from None
    size = len(to_json(frozen))
    if size > limit:
        raise ValueError(f"it is {size:,} bytes of JSON, over the {limit:,} an output may be "
                         "(Limits.max_output_bytes)")
    return frozen


def thaw(value: Any) -> Any:
    """Frozen JSON data (what records hold: read-only mappings, tuples) as plain dicts and lists.

    It is for code that wants its own copy, or a JSON library that takes no mappings.
    """
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(item) for item in value]
    return value


def to_json(value: Any) -> str:
    """JSON text of frozen (or plain) JSON data, without thawing it into a copy first."""
    return _ENCODER.encode(value)


def _plain(value: Any) -> Any:
    if type(value) is FrozenMap:
        return value.as_dict()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(default=_plain, allow_nan=False)
