"""The web view as an ASGI application: its routes, and what every response carries.

Every page reads through the store and returns HTML; every failure becomes a page of its
status naming what was wrong (`errors.PageError`), the database being away a 503 (an open
page's live part keeps what it showed and asks again), and anything unexpected a 500 whose
details go to the log only. Pages are plain functions, run in Starlette's thread pool,
because the store's calls block.

Responses carry a strict Content-Security-Policy (scripts and styles from this server only,
no framing, forms posted only here), `no-store` (the pages hold what the database holds),
and, when the server listens on loopback, only loopback Host headers are accepted: a page
in the operator's browser cannot rebind a name of its own to 127.0.0.1 and read this one.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib.resources import files
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from persistence import SqlStore

from ..core.errors import NotCancellable, StoreUnavailable
from ..core.operations.operator_requests import request_cancel
from .actions import CleanupJob, form_of, reason_of, require_token
from .errors import Conflict, Moved, NotFound, PageError, ServerError, Unavailable
from .history_page import history_page
from .layout import Site, frame
from .leftovers_page import leftovers_page
from .machine_page import machine_page
from .markup import Safe, clipped, fill, path, with_query
from .roots_page import roots_page
from .tree_page import tree_page

log = logging.getLogger("endaction.web")

STATIC = {"style.css": "text/css; charset=utf-8",
          "live.js": "text/javascript; charset=utf-8"}
#: What an action's redirect may say on the next page: a code in the address, never text
#: from it (a link someone sent could otherwise put words on this page).
NOTES = {
    "cancel": "Cancel requested: the engine running this root acts at its next tick (if none "
              "runs, `endaction resume` does).",
    "cleanup": "Cleanup started: it retries every resource left revert_failed; this page "
               "follows it.",
}
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
          "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [(b"content-security-policy", POLICY.encode()),
           (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
           (b"referrer-policy", b"no-referrer"), (b"cache-control", b"no-store")]
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

Page = Callable[[Request], Safe]


class _Headers:
    """Adds HEADERS to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, sending)


class _Pages:
    """The web view's endpoints over one store and site.

    Every page is answered, every error is a page of its own, and every action is behind the
    token.
    """

    def __init__(self, store: SqlStore, site: Site, token: str | None,
                 cleanup: CleanupJob | None, clock: Callable[[], float]) -> None:
        self.store, self.site, self.token, self.cleanup, self.clock = (
            store, site, token, cleanup, clock)
        self.assets = {name: (files(__package__) / "static" / name).read_bytes()
                       for name in STATIC}

    def error_page(self, err: PageError) -> HTMLResponse:
        body = fill('<p class="problem">$message</p><p><a href="/">the roots</a></p>',
                    message=err.message)
        return HTMLResponse(frame(self.site, err.title, body,
                                  heading=f"{err.status} {err.title}"),
                            status_code=err.status)

    def answered(self, page: Callable[[Request], Safe | Response]
                 ) -> Callable[[Request], Response]:
        @functools.wraps(page)
        def endpoint(request: Request) -> Response:
            try:
                found = page(request)
            except PageError as err:
                return self.error_page(err)
            except Moved as moved:
                return RedirectResponse(moved.location, status_code=303)
            except StoreUnavailable as err:
                return self.error_page(Unavailable(f"the database did not answer: {err} "
                                                   "(reload in a moment)"))
            except Exception:  # the details are for the log, not for the page
                log.exception("the page %s failed", clipped(request.url.path, 200))
                return self.error_page(ServerError("this page failed on the server; its log "
                                                   "says why"))
            return found if isinstance(found, Response) else HTMLResponse(found)
        return endpoint

    def acting(self, action: Callable[[Request, dict[str, str]], Response]
               ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                form = await form_of(request)
                require_token(self.token, request, form)
            except PageError as err:
                return self.error_page(err)
            return await run_in_threadpool(self.answered(lambda r: action(r, form)), request)
        return endpoint

    @staticmethod
    def note(request: Request) -> str | None:
        return NOTES.get(request.query_params.get("done", ""))

    @staticmethod
    def params(request: Request, *ignored: str) -> dict[str, str]:
        return {k: v for k, v in request.query_params.items() if k not in ignored}

    def roots(self, request: Request) -> Safe:
        return roots_page(self.site, self.store, self.params(request), self.clock())

    def tree(self, request: Request) -> Safe:
        return tree_page(self.site, self.store, request.path_params["root_id"],
                         self.note(request))

    def history(self, request: Request) -> Safe:
        return history_page(self.site, self.store, request.path_params["root_id"],
                            self.params(request))

    def machine(self, request: Request) -> Safe:
        return machine_page(self.site, self.store, request.path_params["object_id"])

    def leftovers(self, request: Request) -> Safe:
        return leftovers_page(self.site, self.store, self.params(request, "done"),
                              self.cleanup.state if self.cleanup else None,
                              self.note(request))

    def cancel(self, request: Request, form: dict[str, str]) -> Response:
        root_id = request.path_params["root_id"]
        if self.store.command(root_id) is None:
            raise NotFound(f"no root with id {clipped(root_id, 100)!r} in {self.store.url}")
        try:
            request_cancel(self.store, root_id,
                           reason_of(form, "cancelled from the web view"), self.clock())
        except NotCancellable as err:
            raise Conflict(str(err)) from None
        return RedirectResponse(with_query(path("roots", root_id), done="cancel"),
                                status_code=303)

    def clean(self, request: Request, form: dict[str, str]) -> Response:
        if self.cleanup is None:
            raise Conflict("this web view was started without a way to clean up")
        self.cleanup.start()
        return RedirectResponse(with_query("/leftovers", done="cleanup"), status_code=303)

    def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.assets:
            raise NotFound(f"no file {clipped(name, 80)!r} here")
        return Response(self.assets[name], media_type=STATIC[name])

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        problem = PageError(f"{request.method} {clipped(request.url.path, 200)}: "
                            + ("no such page" if exc.status_code == 404 else str(exc.detail)))
        problem.status, problem.title = exc.status_code, str(exc.detail)
        return self.error_page(problem)


def web_app(store: SqlStore, site: Site, *, token: str | None = None,
            cleanup: CleanupJob | None = None, allowed_hosts: Sequence[str] = ("*",),
            clock: Callable[[], float] = time.time) -> Starlette:
    """The web view of `store`; with `token` (and `cleanup`) its actions are offered."""
    if site.actions != (token is not None):
        raise ValueError("site.actions says whether a token is given")
    pages = _Pages(store, site, token, cleanup, clock)
    routes = [
        Route("/", pages.answered(pages.roots)),
        Route("/roots/{root_id}", pages.answered(pages.tree)),
        Route("/roots/{root_id}/history", pages.answered(pages.history)),
        Route("/roots/{root_id}/cancel", pages.acting(pages.cancel), methods=["POST"]),
        Route("/machine/{object_id}", pages.answered(pages.machine)),
        Route("/leftovers", pages.answered(pages.leftovers)),
        Route("/cleanup", pages.acting(pages.clean), methods=["POST"]),
        Route("/static/{name}", pages.answered(pages.static)),
        # Browsers ask for it on every page; there is none, and "none" is not an error.
        Route("/favicon.ico", lambda request: Response(status_code=204)),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)),
                  Middleware(_Headers)]
    exception_handlers: dict[Any, Any] = {HTTPException: pages.http_error}
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers=exception_handlers)
