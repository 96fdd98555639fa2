"""`endaction agent serve`: the local-disk storage host as its own long-running process."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from statemachines import InvalidConfiguration
from statemachines.http import HostLimits, ServerTls
from statemachines.toolkit import UsageProblem, finite, logged, require_extra

from .host_token import DEFAULT_PORT, TOKEN_FILE


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
    """Serve the local-disk storage host over HTTP until SIGTERM or SIGINT.

    It speaks HTTPS with --tls-cert and --tls-key. Callers present the token either way; so
    does a reader of its Prometheus metrics at /metrics, unless --metrics-open.
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
    require_extra("http", "endaction agent serve")
    from statemachines.http.listening import listen

    from .storage_host import serve_storage

    # Bound first, by us rather than uvicorn: a port in use is then one line and exit 1
    # (uvicorn's own line and exit status meant something else here), before any token or
    # journal is made for a host that cannot run.
    listening = listen(host, port)
    try:
        serve_storage(listening, storage, host, token_file, max_resumes, threads,
                      seconds_per_mib, tls,
                      HostLimits(request_timeout=request_timeout, keep_alive=keep_alive,
                                 max_connections=max_connections), metrics_open)
    finally:
        listening.close()

