"""What the command line, the web view and an application's own commands are built from.

The `endaction` group (`statemachines.cli`) and the web view (`statemachines.web`) both
import this room and neither imports the other's insides; an application that declares
commands of its own (`App.commands`: the VM example's `demo` and `agent serve`) takes what
it needs from the names below, the way it takes the engine's from `statemachines`:

- options: `db_option` (`--db`), `json_option` (`--json`), `agent_options` (where the
  agents are: `--storage`, `--agent-url` and the rest, read as an `AgentChoice`), `finite`
  (a click callback refusing infinities and NaN), `DEFAULT_HOME`;
- running: `open_app` (the application's store, agents and engine for one command),
  `make_progress` / `Progress` / `describe` (a live line per committed tick), `logged`
  (the logging options of a command);
- ending: `UsageProblem` (a clear error and exit code 2), `run_exit_status` and
  `generic_report` (the exit status and the report `resume` prints);
- optional parts: `require_extra` (a command that needs an extra checks for it first: a
  missing one is `MissingExtra`, exit code 2, naming the pip command).
"""

from __future__ import annotations

from ..core.errors import require_extra
from .agent_options import AgentChoice, agent_options
from .app_world import open_app
from .database import DEFAULT_HOME, db_option, finite, json_option
from .errors import UsageProblem
from .logging_setup import logged
from .progress import Progress, describe, make_progress
from .run_report import generic_report, run_exit_status

__all__ = [
    "DEFAULT_HOME",
    "AgentChoice",
    "Progress",
    "UsageProblem",
    "agent_options",
    "db_option",
    "describe",
    "finite",
    "generic_report",
    "json_option",
    "logged",
    "make_progress",
    "open_app",
    "require_extra",
    "run_exit_status",
]
