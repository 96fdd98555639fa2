"""One logging set-up for every command: `--log-level`, `-v` and `-q`, also ENDACTION_LOG_LEVEL.

The engine logs what it gives up on and a worker what it does; each command has its own
default level (a worker's is INFO, so that a quiet worker is never a mystery; the others say
only warnings), and the options move from it. Lines go to stderr, so stdout stays for what a
script reads.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

LEVELS = ("debug", "info", "warning", "error")
_ORDER = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR]
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int) -> None:
    """Send endaction's records at `level` and above to stderr, once per process.

    The handler goes on the root logger only if it has none: an application that embeds the
    CLI (or a test capturing logs) keeps its own handlers.
    """
    logging.basicConfig(level=logging.WARNING, format=FORMAT, stream=sys.stderr)
    logging.getLogger("endaction").setLevel(level)
    logging.getLogger("statemachines").setLevel(level)


def chosen_level(default: int, log_level: str | None, verbose: int, quiet: int) -> int:
    """--log-level wins; otherwise each -v is one level more, each -q one less."""
    if log_level is not None:
        return int(getattr(logging, log_level.upper()))
    index = _ORDER.index(default) - verbose + quiet
    return _ORDER[max(0, min(len(_ORDER) - 1, index))]


def with_logging(command: click.Command, default: int = logging.WARNING) -> click.Command:
    """Give `command` the logging options; its callback sets logging up before it runs."""
    if getattr(command, "_endaction_logging", False) or command.callback is None:
        return command
    callback = command.callback

    @functools.wraps(callback)
    def configured(*args: Any, log_level: str | None, verbose: int, quiet: int,
                   **kwargs: Any) -> Any:
        setup_logging(chosen_level(default, log_level, verbose, quiet))
        return callback(*args, **kwargs)

    command.callback = configured
    command.params += [
        click.Option(["--log-level"], type=click.Choice(LEVELS, case_sensitive=False),
                     default=None, envvar="ENDACTION_LOG_LEVEL", show_envvar=True,
                     help=f"log at this level and above [default: "
                          f"{logging.getLevelName(default).lower()}]"),
        click.Option(["--verbose", "-v"], count=True, help="log more (repeatable)"),
        click.Option(["--quiet", "-q"], count=True, help="log less (repeatable)"),
    ]
    command._endaction_logging = True  # type: ignore[attr-defined]
    return command


def logged(default: int = logging.WARNING) -> Callable[[click.Command], click.Command]:
    """A decorator form of `with_logging`, for a command whose default level is not WARNING."""
    return functools.partial(with_logging, default=default)
