"""One error funnel for every command: an EndactionError becomes one line and an exit status.

Helpers raise; they never call `sys.exit`. The group below turns what they raise into
`Error: <message>` on stderr (as click words its own errors) and the documented status, so no
command prints a traceback for a mistake the user can fix, and no two commands word the same
mistake differently.
"""

from __future__ import annotations

from typing import Any

import click

from persistence.schema_version import NoSchema, NotAnEndactionDatabase, SchemaMismatch

from ..core.errors import EndactionError, MissingExtra

EXIT_OK = 0
EXIT_FAILED = 1  # the database or the storage failed
EXIT_USAGE = 2  # bad usage: a wrong option, id or database
EXIT_LEFT_BEHIND = 3  # the run ended but something was left behind, or it could not end
EXIT_TIMED_OUT = 4  # `status --wait` gave up waiting: the command is still running
EXIT_ROLLED_BACK = 5  # it failed or was cancelled, and everything it made was reverted


class UsageProblem(EndactionError):
    """Something the user asked for cannot be done as asked (exit status 2)."""


# A missing extra is a usage problem too: the feature asked for is not installed.
_USAGE = (UsageProblem, MissingExtra, NoSchema, NotAnEndactionDatabase, SchemaMismatch)


def exit_status(err: EndactionError) -> int:
    """The documented exit status of an error: 2 for a mistake in usage, else 1."""
    return EXIT_USAGE if isinstance(err, _USAGE) else EXIT_FAILED


class EndactionGroup(click.Group):
    """A click group whose commands may raise EndactionError and still exit cleanly."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; an EndactionError becomes `Error: <message>` and its exit status."""
        try:
            return super().invoke(ctx)
        except EndactionError as err:
            click.echo(f"Error: {err}", err=True)
            ctx.exit(exit_status(err))
