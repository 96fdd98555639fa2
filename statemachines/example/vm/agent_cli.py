"""`endaction agent serve`: the local-disk storage host as its own long-running process."""

from __future__ import annotations

import logging
import socket
import ssl
from pathlib import Path

import click
import uvicorn

from statemachines import AgentError, InvalidConfiguration
from statemachines.http import ConnectionBook, HostLimits, ServerTls, uvicorn_options
from statemachines.http.listening import listen, serve_until_stopped
from statemachines.observability import HostMetrics
from statemachines.toolkit import UsageProblem, finite, logged

from .local_disk import LocalDiskAgent
from .storage_host import DEFAULT_PORT, TOKEN_FILE, ensure_token_file, read_token, storage_app


@click.group()
def agent() -> None:
    """Task hosts as processes of their own."""


@logged(logging.INFO)
@agent.command()
@click.option("--storage", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="the storage directory (templates, images, the task journal)")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (anything but loopback exposes the host: keep the "
                   "token secret)")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT,
              show_default=True)
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"the bearer token callers must present [default: STORAGE/{TOKEN_FILE}, "
                   "made if missing]")
@click.option("--max-resumes", type=click.IntRange(0, 100), default=3, show_default=True,
              help="times a task that died with the host is run again before it is "
                   "reported unknown (0: reported unknown at once)")
@click.option("--workers", "threads", type=click.IntRange(1, 64), default=4,
              show_default=True, help="copies and deletes running at once")
@click.option("--seconds-per-mib", type=click.FloatRange(0, 60), default=0.0,
              show_default=True, callback=finite,
              help="slow copies down, to watch them (or kill the host) in the middle")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="F", help="serve HTTPS with this certificate (PEM; with --tls-key)")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="F", help="the key of --tls-cert (PEM)")
@click.option("--tls-client-ca", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="F",
              help="mutual TLS: callers must present a certificate signed by this CA")
@click.option("--max-connections", type=click.IntRange(8, 100_000),
              default=HostLimits.max_connections, show_default=True,
              help="connections open at once; beyond, the oldest one not being answered is "
                   "closed (503 if all are)")
@click.option("--request-timeout", type=click.FloatRange(0.1, 3600),
              default=HostLimits.request_timeout, show_default=True, callback=finite,
              metavar="S", help="seconds a connection has to send a whole request")
@click.option("--keep-alive", type=click.FloatRange(0.1, 3600),
              default=HostLimits.keep_alive, show_default=True, callback=finite, metavar="S",
              help="seconds an idle keep-alive connection stays open")
@click.option("--metrics-open", is_flag=True,
              help="serve GET /metrics (Prometheus) to callers without the token; by default "
                   "it needs the token, like every other route")
def serve(storage: Path, host: str, port: int, token_file: Path | None, max_resumes: int,
          threads: int, seconds_per_mib: float, tls_cert: Path | None, tls_key: Path | None,
          tls_client_ca: Path | None, max_connections: int, request_timeout: float,
          keep_alive: float, metrics_open: bool) -> None:
    """Serve the local-disk storage host over HTTP (HTTPS with --tls-cert and --tls-key)
    until SIGTERM or SIGINT. Callers present the token either way; so does a reader of its
    Prometheus metrics at /metrics, unless --metrics-open.
    """
    if (tls_cert is None) != (tls_key is None) or (tls_client_ca and tls_cert is None):
        raise UsageProblem("--tls-cert and --tls-key go together (and --tls-client-ca with "
                           "them)")
    tls = None if tls_cert is None or tls_key is None else ServerTls(tls_cert, tls_key,
                                                                       tls_client_ca)
    if tls is not None:
        try:
            tls.check()
        except InvalidConfiguration as err:
            raise UsageProblem(str(err)) from err
    # Bound first, by us rather than uvicorn: a port in use is then one line and exit 1
    # (uvicorn's own line and exit status meant something else here), before any token or
    # journal is made for a host that cannot run.
    listening = listen(host, port)
    try:
        _serve(listening, storage, host, token_file, max_resumes, threads, seconds_per_mib,
               tls, HostLimits(request_timeout=request_timeout, keep_alive=keep_alive,
                               max_connections=max_connections), metrics_open)
    finally:
        listening.close()


def _serve(listening: socket.socket, storage: Path, host: str, token_file: Path | None,
           max_resumes: int, threads: int, seconds_per_mib: float,
           tls: ServerTls | None, limits: HostLimits, metrics_open: bool) -> None:
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
