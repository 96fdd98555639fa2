"""`endaction ui`: the live web view of a database (statemachines.web), served by uvicorn.

It binds loopback by default and is read-only unless started with `--allow-actions` and a
token file; then cancel and cleanup are offered to whoever presents the token. The cleanup
runs an engine of the application with its agents, so the command takes the same agent
options as `endaction cleanup`. It is served with the task host's bounds
(`statemachines.http.bounded_server`): a browser or a script that holds connections open
cannot exhaust the process.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..core.engine.application import App
from ..core.errors import require_extra
from ..toolkit.agent_options import AgentChoice, agent_options
from ..toolkit.app_option import app_option
from ..toolkit.database import db_option, finite
from ..toolkit.errors import UsageProblem

DEFAULT_PORT = 8720



@click.command()
@app_option
@db_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (anything but loopback shows the database to the "
                   "network)")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT,
              show_default=True, help="port to listen on (0: any free one, printed)")
@click.option("--allow-actions", is_flag=True,
              help="offer cancel and cleanup buttons, to whoever presents the token")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="F", help="with --allow-actions: the file holding the token that "
                                "actions must carry")
@click.option("--refresh", type=click.FloatRange(0, 3600), default=5.0, show_default=True,
              callback=finite, metavar="S",
              help="seconds between a page's live updates (0: none)")
@agent_options
def ui(app: App, db: str | None, host: str, port: int, allow_actions: bool,
       token_file: Path | None, refresh: float, agents_at: AgentChoice) -> None:
    """Serve a live web view of the database.

    It shows the roots, each root's tree, each command's machine with the path it took, the
    history, and what is left revert_failed.

    Read-only unless --allow-actions; cleanup then runs as `endaction cleanup` does, with
    the agents the agent options name. Stops on SIGTERM or SIGINT.
    """
    if allow_actions != (token_file is not None):
        raise UsageProblem("--allow-actions and --token-file go together: actions are only "
                           "offered to whoever presents the token in that file")
    require_extra("http", "endaction ui")
    from .ui_server import serve_ui

    serve_ui(app, db, host, port, token_file, refresh, agents_at)
