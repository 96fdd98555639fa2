"""Submit keys: which keys a client may use, and whether a request is the one a key names.

A client that timed out cannot know whether its submit committed; with a key it simply submits
again. So a key names one root forever, and a second submit under it is answered with that
root if it asks for the same thing, and refused (`SubmitKeyConflict`) if it asks for something
else: answering another request with the first one's root would run the wrong work silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidParameters, SubmitKeyConflict
from ..machines.reasons import ExecutionReason
from ..records.frozen_json import thaw
from ..records.records import MAX_SUBMIT_KEY_LENGTH, CommandRecord
from ..records.revert_state import ResourceRef

#: Differing parameters a conflict names before it says "...".
_NAMED = 5


def key_problems(key: object) -> list[str]:
    """Why `key` cannot be a submit key, if it cannot.

    Keys are printed, logged, pasted into shells and compared byte for byte: a blank at either
    end, or a character nobody sees (a control, a zero-width space, a lone surrogate), would
    make two keys that look the same name two roots.
    """
    if not isinstance(key, str) or not key:
        return [f"submit key must be a non-empty string (got {key!r:.80})"]
    if len(key) > MAX_SUBMIT_KEY_LENGTH:
        return [f"submit key is {len(key)} characters long, at most {MAX_SUBMIT_KEY_LENGTH} "
                "fit"]
    if key != key.strip():
        return [f"submit key must not begin or end with whitespace (got {key!r:.80})"]
    if not key.isprintable():
        return [f"submit key must be printable text, without control, format or surrogate "
                f"characters (got {key!r:.80})"]
    return []


def check_keys(type_names: Sequence[str], keys: Sequence[str | None]) -> None:
    """Refuse a bad key, or a batch whose keys cannot name its requests one to one.

    The refusal is an `InvalidParameters` naming the request's type, raised before anything is
    written.
    """
    if len(keys) != len(type_names):
        raise InvalidParameters("submit", [f"{len(type_names)} requests and {len(keys)} keys: "
                                           "give one key (or None) per request"])
    seen: set[str] = set()
    for type_name, key in zip(type_names, keys, strict=True):
        if key is None:
            continue
        if problems := key_problems(key):
            raise InvalidParameters(type_name, problems)
        if key in seen:
            raise InvalidParameters(type_name, [f"submit key {key!r} is given twice in one "
                                                "batch: a key names one root"])
        seen.add(key)


def canonical(value: Any) -> str:
    """JSON text that two equal JSON documents share whatever their keys' order.

    Requests are compared as this text, not as Python values: 1, 1.0 and true are equal in
    Python and three different parameters to the command that reads them.
    """
    return json.dumps(thaw(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_same_request(key: str, root: CommandRecord, type_name: str,
                       parameters: Mapping[str, Any], entity: ResourceRef | None,
                       execution_reason: ExecutionReason) -> None:
    """Refuse a request that is not the one `root` was submitted for.

    Nothing happens if it is the same; otherwise SubmitKeyConflict names the key, the root and
    what differs.
    """
    differs = []
    if root.type != type_name:
        differs.append(f"is of type {root.type}, not {type_name}")
    if root.execution_reason != execution_reason:
        differs.append(f"has execution reason {root.execution_reason}, "
                       f"not {ExecutionReason(execution_reason)}")
    had = (root.entity_type, root.entity_id)
    asked = (entity.type, entity.id) if entity is not None else (None, None)
    if had != asked:
        differs.append(f"has entity {_entity(had)}, not {_entity(asked)}")
    if canonical(root.parameters) != canonical(parameters):
        names = sorted(name for name in {*root.parameters, *parameters}
                       if name not in root.parameters or name not in parameters
                       or canonical(root.parameters[name]) != canonical(parameters[name]))
        shown = ", ".join(names[:_NAMED]) + (", ..." if len(names) > _NAMED else "")
        differs.append(f"has other parameters ({shown} differs)" if len(names) == 1
                       else f"has other parameters ({shown} differ)")
    if differs:
        raise SubmitKeyConflict(key, root.id, (
            f"submit key {key!r} already names root {root.id}, which {' and '.join(differs)}: "
            "a key names one root forever (submit other work under another key)"))


def _entity(ref: tuple[str | None, str | None]) -> str:
    return "none" if ref[0] is None else f"{ref[0]}/{ref[1]}"
