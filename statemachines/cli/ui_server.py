"""The web view's server for `endaction ui`: the store, the site, uvicorn on one socket.

Apart from the command (ui_cmd.py) so that the `endaction` group loads without the `http`
extra: only serving the view needs starlette and uvicorn.
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
from ..toolkit.agent_options import AgentChoice
from ..toolkit.app_world import open_app
from ..toolkit.database import open_database
from ..toolkit.errors import UsageProblem
from ..web import CleanupJob, Site, read_token_file, web_app
from ..web.app import LOOPBACK_HOSTS
from ..web.cleanup import cleanup_work

MISSING = "run `endaction demo` or `endaction submit` first, or pass --db"


def serve_ui(app: App, db: str | None, host: str, port: int, token_file: Path | None,
             refresh: float, agents_at: AgentChoice) -> None:
    """Open the database, check the token and the agents, and serve until stopped."""
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
