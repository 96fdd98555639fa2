"""Why a command runs: the flag that decides which end path a command may take.

It is persisted with the command's parameters before any task exists, so a restarted engine
still knows that an opposite command was one, and that it must never end as a success.
"""

from __future__ import annotations

from enum import StrEnum


class ExecutionReason(StrEnum):
    """Why a command runs: REGULAR_FLOW for work, ROLLBACK_FLOW for an opposite command.

    A ROLLBACK_FLOW command's end always takes the failure path (`ends_successfully`).
    """

    REGULAR_FLOW = "REGULAR_FLOW"
    ROLLBACK_FLOW = "ROLLBACK_FLOW"
