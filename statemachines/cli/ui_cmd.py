"""`endaction ui`: the live web view of a database (statemachines.web), served by uvicorn.

It binds loopback by default and is read-only unless started with `--allow-actions` and a
token file; then cancel and cleanup are offered to whoever presents the token. The cleanup
runs an engine of the application with its agents, so the command takes the same agent
options as `endaction cleanup`. It is served with the task host's bounds
(`statemachines.http.bounded_server`): a browser or a script that holds connections open
cannot exhaust the process.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import click
import uvicorn
from starlette.applications import Starlette

from persistence.schema_version import NoSchema

from ..core.engine.application import App
from ..core.errors import EndactionError
from ..http import ConnectionBook, HostLimits, uvicorn_options
from ..http.listening import listen, serve_until_stopped
from ..toolkit.agent_options import AgentChoice, agent_options
from ..toolkit.app_option import app_option
from ..toolkit.app_world import open_app
from ..toolkit.database import db_option, finite, open_database
from ..toolkit.errors import UsageProblem
from ..web import CleanupJob, Site, read_token_file, web_app
from ..web.app import LOOPBACK_HOSTS
from ..web.cleanup import cleanup_work

DEFAULT_PORT = 8720
MISSING = "run `endaction demo` or `endaction submit` first, or pass --db"



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
    """Serve a live web view of the database: the roots, each root's tree, each command's
    machine with the path it took, the history, and what is left revert_failed.

    Read-only unless --allow-actions; cleanup then runs as `endaction cleanup` does, with
    the agents the agent options name. Stops on SIGTERM or SIGINT.
    """
    if allow_actions != (token_file is not None):
        raise UsageProblem("--allow-actions and --token-file go together: actions are only "
                           "offered to whoever presents the token in that file")
    try:
        token = read_token_file(token_file) if token_file is not None else None
    except EndactionError as err:
        raise UsageProblem(str(err)) from err
    try:
        store = open_database(db, create=False, app=app, missing=MISSING)
    except NoSchema as err:
        raise UsageProblem(f"{err}: {MISSING}") from err
    try:
        cleanup = None
        if token is not None:
            # The agent options are checked now, not at the first click of the button.
            open_app(app, db, agents_at, create=False, missing=MISSING).close()
            cleanup = CleanupJob(cleanup_work(app, db, agents_at))
        site = Site(database=store.url, app_name=app.name, actions=token is not None,
                    refresh=refresh)
        listening = listen(host, port)
        try:
            _serve(listening, web_app(store, site, token=token, cleanup=cleanup,
                                      allowed_hosts=_hosts_for(host)), host, site)
        finally:
            listening.close()
            if cleanup is not None and not cleanup.wait(0):
                click.echo("a cleanup was still running: `endaction resume` finishes what it "
                           "started", err=True)
    finally:
        store.dispose()


def _serve(listening: socket.socket, asgi: Starlette, host: str, site: Site) -> None:
    book = ConnectionBook(HostLimits())
    try:
        bound = listening.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"endaction ui on http://{shown}:{bound}/ for {site.database} ("
                   + ("actions allowed with the token" if site.actions else "read-only")
                   + ")", err=True)
        serve_until_stopped(uvicorn.Server(uvicorn.Config(
            asgi, log_level="warning", access_log=False, **uvicorn_options(book))), listening)
    finally:
        book.refusals.flush()
    click.echo("endaction ui stopped", err=True)


def _hosts_for(host: str) -> list[str]:
    """Loopback serves loopback names only (no DNS rebinding); any other address any."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return [*LOOPBACK_HOSTS, host] if loopback else ["*"]
