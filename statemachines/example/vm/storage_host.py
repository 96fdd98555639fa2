"""The local-disk storage host as its own process (`endaction agent serve`), and the engine's
client for it (`RemoteStorage`).

The host serves the task protocol (`statemachines.http`) over a `LocalDiskAgent`, plus two
routes of its own that the demo needs from a storage it cannot see: the image files it holds
(for the leftover check) and making sure a template exists. Its journal is on disk, so it
survives the host's restarts: a task that finished before a restart is reported finished after
it, and one that died with the process is run again from scratch (a copy and a delete are
idempotent) up to `max_resumes` times, then reported `unknown`, never `success`. With
`max_resumes=0` it is reported `unknown` at once.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from statemachines import AgentError, TaskRejected
from statemachines.http import HttpAgent, host_app
from statemachines.http.protocol import PREFIX
from statemachines.http.server import BadRequest, json_body

from .local_disk import LocalDiskAgent

log = logging.getLogger("endaction.storage_host")

DEFAULT_PORT = 8710
TOKEN_FILE = "agent-token"
_TEMPLATE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
MAX_TEMPLATE_BYTES = 1 << 30


def read_token(path: Path) -> str:
    """The token in `path` (surrounding whitespace ignored); refused when it is too short."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise AgentError(f"cannot read the token file {path}: {err}") from err
    if len(token) < 16:
        raise AgentError(f"the token in {path} is {len(token)} characters long; at least 16 "
                         "are needed")
    if not token.isascii() or not token.isprintable():
        raise AgentError(f"the token in {path} must be printable ASCII (it goes in an HTTP "
                         "header)")
    return token


def ensure_token_file(path: Path) -> str:
    """The token in `path`, made (random, readable by this user only) when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
        log.warning("wrote a new host token to %s (give it to the engines: "
                    "--agent-token-file %s)", path, path)
    return read_token(path)


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


class RemoteStorage(HttpAgent):
    """A local-disk host in another process, as the demo uses it: the task protocol, plus
    what the demo needs to see of the storage (templates, image files).
    """

    def __init__(self, url: str, token: str, **options: Any) -> None:
        super().__init__(url, token, **options)
        self.templates = f"{self.url} (its templates)"
        self.storage = self.url
        self.failing_deletes: frozenset[str] = frozenset()

    def image_names(self) -> list[str]:
        body = self._call("GET", f"{PREFIX}/storage/images", None, "list its images")
        names = body.get("images")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise AgentError(f"host {self.url} listed its images as garbage: {names!r:.200}")
        return sorted(names)

    def ensure_template(self, name: str, size: int) -> None:
        try:
            self._call("PUT", f"{PREFIX}/storage/templates/{name}", {"size": size},
                       f"make template {name}")
        except TaskRejected as err:
            raise AgentError(str(err)) from err
