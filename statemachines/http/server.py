"""Any `Agent` as an HTTP task host: `host_app(agent, token)` is an ASGI application.

Who may call it: every request but `GET /openapi.json` must carry `Authorization: Bearer
<token>`, compared in constant time; a request without it, or with another token, is refused
with 401 and logged (never the token). Bodies are bounded (`MAX_BODY_BYTES`, 413), task ids
must be plain ids, and what the agent refuses (a name that would leave its storage, an
unknown verb) is a 422 with `"rejected": true`, which the engine takes as a refusal for good.
The agent's own methods are synchronous and may block (file locks, fsync): Starlette runs
them in its thread pool, so one slow call never stalls the others.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..core.errors import extra_missing
from ..core.ports.agent_protocol import Abortable, Agent, AgentError, TaskRejected
from .protocol import (
    MAX_BODY_BYTES,
    MAX_POLL_IDS,
    PREFIX,
    PROTOCOL_VERSION,
    TASK_ID,
    openapi_document,
    report_to_json,
)

try:
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import BaseRoute, Route
    from starlette.types import ASGIApp, Receive, Scope, Send
except ModuleNotFoundError as err:
    raise extra_missing(err, "http", "the HTTP task host (host_app)") from err

log = logging.getLogger("endaction.host")


class BadRequest(Exception):
    """The request is malformed: 400 with this message."""


class TooLarge(Exception):
    """The body is over MAX_BODY_BYTES: 413."""


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; reading stops at MAX_BODY_BYTES, whatever the headers said."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise TooLarge
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        body = json.loads(raw) if raw else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRequest(f"the body is not JSON: {err}") from err
    except RecursionError:
        raise BadRequest("the body is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, not {type(body).__name__}")
    return body


def shown(path: str) -> str:
    """A request path as it may appear in a log line: quoted and cut short.

    Quoted, a newline in it cannot forge another line; cut short, a 50 KB path cannot flood
    the log.
    """
    return repr(path[:200])


def _task_id(request: Request) -> str:
    task_id = str(request.path_params["task_id"])
    if not TASK_ID.match(task_id):
        raise BadRequest(f"task id {task_id[:80]!r} is not a plain id")
    return task_id


Handler = Callable[[Request], Awaitable[Response]]


def _guarded(handler: Handler) -> Handler:
    """One error mapping for every route: the agent's refusals and failures as statuses."""

    async def run(request: Request) -> Response:
        path = shown(request.url.path)
        try:
            return await handler(request)
        except BadRequest as err:
            log.warning("refused %s %s: %s", request.method, path, err)
            return _error(400, str(err))
        except TooLarge:
            log.warning("refused %s %s: body over %d bytes", request.method, path,
                        MAX_BODY_BYTES)
            return _error(413, f"request bodies are limited to {MAX_BODY_BYTES} bytes")
        except TaskRejected as err:
            log.info("rejected %s %s: %s", request.method, path, err)
            return _error(422, str(err), rejected=True)
        except AgentError as err:
            log.warning("failed %s %s: %s", request.method, path, err)
            return _error(503, str(err))
        except Exception as err:  # the agent's own bug or fault: say what, keep serving
            log.exception("failed %s %s", request.method, path)
            return _error(503, f"{type(err).__name__}: {err}")

    return run


def host_app(agent: Agent, token: str, *, name: str = "task host",
             routes: Sequence[BaseRoute] = ()) -> ASGIApp:
    """The ASGI application serving `agent` to callers holding `token`.

    Args:
        agent: what runs the tasks (its methods are called from worker threads).
        token: the shared secret every caller must present; at least 16 characters.
        name: how the host names itself in `/v1/health`.
        routes: extra routes of this kind of host (the local-disk host adds its storage's).
    """
    if len(token) < 16:
        raise ValueError("the host token must be at least 16 characters long")

    @_guarded
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "protocol": PROTOCOL_VERSION, "host": name,
                             "abort": isinstance(agent, Abortable)})

    @_guarded
    async def start(request: Request) -> Response:
        task_id = _task_id(request)
        verb, parameters = _start_body(await json_body(request))
        await run_in_threadpool(agent.start, task_id, verb, parameters)
        return JSONResponse({"task_id": task_id, "started": True})

    @_guarded
    async def poll(request: Request) -> Response:
        ids = _poll_body(await json_body(request))
        answer = await run_in_threadpool(agent.poll, ids)
        return JSONResponse({"tasks": {task_id: report_to_json(report)
                                       for task_id, report in answer.items()}})

    @_guarded
    async def clear(request: Request) -> Response:
        task_id = _task_id(request)
        await run_in_threadpool(agent.clear, task_id)
        return JSONResponse({"task_id": task_id, "cleared": True})

    @_guarded
    async def abort(request: Request) -> Response:
        task_id = _task_id(request)
        if not isinstance(agent, Abortable):
            return _error(501, f"{name} cannot abort tasks")
        await run_in_threadpool(agent.abort, task_id)
        return JSONResponse({"task_id": task_id, "aborted": True})

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    app = Starlette(routes=[
        Route("/openapi.json", openapi, methods=["GET"]),
        Route(f"{PREFIX}/health", health, methods=["GET"]),
        Route(f"{PREFIX}/poll", poll, methods=["POST"]),
        Route(f"{PREFIX}/tasks/{{task_id}}", start, methods=["PUT"]),
        Route(f"{PREFIX}/tasks/{{task_id}}", clear, methods=["DELETE"]),
        Route(f"{PREFIX}/tasks/{{task_id}}/abort", abort, methods=["POST"]),
        *[_wrap(route) for route in routes],
    ])
    return _Gate(app, token.encode())


def _start_body(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A start's verb and parameters, or a BadRequest saying which is wrong."""
    verb, parameters = body.get("verb"), body.get("parameters", {})
    if not isinstance(verb, str) or not verb:
        raise BadRequest("'verb' must be a non-empty string")
    if not isinstance(parameters, dict):
        raise BadRequest("'parameters' must be a JSON object")
    return verb, parameters


def _poll_body(body: dict[str, Any]) -> list[str]:
    """A poll's task ids, or a BadRequest saying what is wrong with them."""
    ids = body.get("task_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) and TASK_ID.match(i)
                                            for i in ids):
        raise BadRequest("'task_ids' must be a list of plain task ids")
    if len(ids) > MAX_POLL_IDS:
        raise BadRequest(f"at most {MAX_POLL_IDS} task ids per poll, not {len(ids)}")
    return ids


def _wrap(route: BaseRoute) -> BaseRoute:
    if isinstance(route, Route):
        return Route(route.path, _guarded(route.endpoint), methods=route.methods)
    return route


class _Gate:
    """Token check and declared body size, before any route runs.

    It is ASGI middleware, so that a refused request costs no parsing (a body without a length
    is cut off while it is read).
    """

    def __init__(self, app: ASGIApp, token: bytes) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "")
        client = scope.get("client") or ("?", 0)
        raw_headers = scope.get("headers") or []
        headers = dict(raw_headers)
        if not (method == "GET" and path == "/openapi.json"):
            given = [value for name, value in raw_headers if name == b"authorization"]
            presented = given[0] if len(given) == 1 else b""
            expected = b"Bearer " + self.token
            if not hmac.compare_digest(presented, expected):
                why = ("no token" if not given else "several Authorization headers"
                       if len(given) > 1 else "wrong token")
                log.warning("refused %s %s from %s:%s: %s", method, shown(path), client[0],
                            client[1], why)
                await _error(401, "a valid bearer token is required")(scope, receive, send)
                return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            log.warning("refused %s %s from %s: body of %r bytes", method, shown(path),
                        client[0], length.decode(errors="replace")[:20])
            await _error(413, f"request bodies are limited to {MAX_BODY_BYTES} bytes")(
                scope, receive, send)
            return
        await self.app(scope, receive, send)
