"""Ids are unique across every engine sharing a database, forked workers included.

They sort by the time they were made.
"""

from __future__ import annotations

import os
import re
import time

import pytest

from statemachines.core.records import ids
from statemachines.core.records.ids import new_id


def test_ids_are_32_hex_digits_that_sort_by_the_millisecond_they_were_made() -> None:
    before = time.time_ns() // 1_000_000
    made = [new_id() for _ in range(5_000)]
    after = time.time_ns() // 1_000_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in made)
    assert all(before <= int(i[:12], 16) <= after for i in made)
    assert [i[:12] for i in made] == sorted(i[:12] for i in made)
    assert len(set(made)) == len(made)


def test_the_random_part_does_not_repeat_across_refills_of_the_buffer() -> None:
    """Far more ids than one buffer holds: every random tail is new."""
    tails = {new_id()[12:] for _ in range(3 * ids.BATCH + 7)}
    assert len(tails) == 3 * ids.BATCH + 7


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    """A worker forked after its parent drew randomness must not replay the parent's buffer.

    Both would make the same ids for different commands.
    """
    new_id()  # the parent's buffer is filled and partly used
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read)
        os.write(write, "".join(new_id()[12:] for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    parent = "".join(new_id()[12:] for _ in range(50))
    child_tails = {child[i:i + 20] for i in range(0, len(child), 20)}
    parent_tails = {parent[i:i + 20] for i in range(0, len(parent), 20)}
    assert len(child_tails) == 50 and not child_tails & parent_tails


def test_an_id_generator_that_makes_ids_too_long_is_named_at_the_first() -> None:
    from statemachines.core.errors import InvalidConfiguration
    from statemachines.core.records.ids import checked

    made = checked(lambda: "x" * 65)
    with pytest.raises(InvalidConfiguration, match="65 characters long, at most 64 fit"):
        made()
    assert checked(lambda: "fine-id")() == "fine-id"
    assert checked(new_id) is new_id  # the default costs nothing more
