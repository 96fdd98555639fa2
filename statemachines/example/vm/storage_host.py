"""The local-disk storage host as its own process (`endaction agent serve`).

The engine's client for it is `RemoteStorage` (remote_storage.py); the token both read is in
host_token.py.

The host serves the task protocol (`statemachines.http`) over a `LocalDiskAgent`, plus two
routes of its own that the demo needs from a storage it cannot see: the image files it holds
(for the leftover check) and making sure a template exists. Its journal is on disk, so it
survives the host's restarts: a task that finished before a restart is reported finished after
it, and one that died with the process is run again from scratch (a copy and a delete are
idempotent) up to `max_resumes` times, then reported `unknown`, never `success`. With
`max_resumes=0` it is reported `unknown` at once.
"""

from __future__ import annotations

import re
import socket
import ssl
from pathlib import Path
from typing import Any

import click
import uvicorn
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from statemachines import AgentError
from statemachines.http import ConnectionBook, HostLimits, ServerTls, host_app, uvicorn_options
from statemachines.http.listening import serve_until_stopped
from statemachines.http.protocol import PREFIX
from statemachines.http.server import BadRequest, json_body
from statemachines.observability import HostMetrics
from statemachines.toolkit import UsageProblem

from .host_token import TOKEN_FILE, ensure_token_file, read_token
from .local_disk import LocalDiskAgent

_TEMPLATE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
MAX_TEMPLATE_BYTES = 1 << 30


def storage_app(agent: LocalDiskAgent, token: str) -> Any:
    """The ASGI app of the local-disk host: the task protocol and its storage routes."""

    async def images(request: Request) -> Response:
        return JSONResponse({"images": await run_in_threadpool(agent.image_names)})

    async def template(request: Request) -> Response:
        name = str(request.path_params["name"])
        if not _TEMPLATE.match(name) or name in (".", ".."):
            raise BadRequest(f"template name {name[:80]!r} is not a plain file name")
        body = await json_body(request)
        size = body.get("size")
        if not isinstance(size, int) or isinstance(size, bool) \
                or not 1 <= size <= MAX_TEMPLATE_BYTES:
            raise BadRequest(f"'size' must be a whole number of bytes, 1..{MAX_TEMPLATE_BYTES}")
        try:
            await run_in_threadpool(agent.ensure_template, name, size)
        except OSError as err:
            raise AgentError(f"cannot write template {name}: {err}") from err
        return JSONResponse({"template": name, "size": size})

    return host_app(agent, token, name=f"local-disk host {agent.storage}", routes=[
        Route(f"{PREFIX}/storage/images", images, methods=["GET"]),
        Route(f"{PREFIX}/storage/templates/{{name}}", template, methods=["PUT"]),
    ])


def serve_storage(listening: socket.socket, storage: Path, host: str, token_file: Path | None,
                  max_resumes: int, threads: int, seconds_per_mib: float,
                  tls: ServerTls | None, limits: HostLimits, metrics_open: bool) -> None:
    """Serve a local-disk host on `listening` until SIGTERM or SIGINT, then close its agent.

    The token is made here when the storage has none, only once the port is known to be
    ours: a host that cannot listen leaves no file behind.
    """
    try:
        token = (read_token(token_file) if token_file is not None
                 else ensure_token_file(storage / TOKEN_FILE))
    except (AgentError, OSError) as err:
        raise UsageProblem(str(err)) from err
    metrics = HostMetrics()
    try:
        disk = LocalDiskAgent(storage, workers=threads, max_resumes=max_resumes,
                              seconds_per_mib=seconds_per_mib, on_task_end=metrics.task_ended)
    except OSError as err:
        raise UsageProblem(f"storage directory {storage} is unusable: {err}") from err
    metrics.watch_tasks(lambda: disk.tasks_running)
    # A clean return on SIGTERM closes the agent (running tasks stay journaled as running,
    # for the next instance) and exits 0.
    book = ConnectionBook(limits)
    try:
        bound = listening.getsockname()[1]
        scheme = "https" if tls else "http"
        click.echo(f"local-disk host on {scheme}://{host}:{bound} for {disk.storage} "
                   f"(token in {token_file or storage / TOKEN_FILE}"
                   f"{', callers need a certificate' if tls and tls.client_ca else ''}; "
                   f"metrics at /metrics{' without the token' if metrics_open else ''})",
                   err=True)
        serve_until_stopped(uvicorn.Server(uvicorn.Config(
            metrics.serving(storage_app(disk, token), None if metrics_open else token),
            host=host, port=bound, log_level="warning",
            access_log=False, **uvicorn_options(book),
            ssl_certfile=None if tls is None else str(tls.cert),
            ssl_keyfile=None if tls is None else str(tls.key),
            ssl_ca_certs=None if tls is None or tls.client_ca is None else str(tls.client_ca),
            ssl_cert_reqs=ssl.CERT_REQUIRED if tls and tls.client_ca else ssl.CERT_NONE,
        )), listening)
    finally:
        book.refusals.flush()
        disk.close()
    click.echo("local-disk host stopped", err=True)
