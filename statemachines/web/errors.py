"""What a page refuses, as an HTTP status and one sentence naming what was wrong.

A page that cannot be shown raises one of these; the application turns it into a page of
that status (never a traceback), so an operator who mistyped an id or pasted half a cursor
reads which part of the address was wrong, and a script reads the status.
"""

from __future__ import annotations


class PageError(Exception):
    """A page that cannot be shown as asked; `status` is its HTTP status."""

    status = 400
    title = "Bad request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInput(PageError):
    """A query parameter or form field that is malformed (400)."""


class NotFound(PageError):
    """No such root, command, task or page (404)."""

    status = 404
    title = "Not found"


class Forbidden(PageError):
    """An action without actions allowed, or without the token (403)."""

    status = 403
    title = "Forbidden"


class Conflict(PageError):
    """An action that cannot be done now: the root has ended, a cleanup is running (409)."""

    status = 409
    title = "Conflict"


class Unavailable(PageError):
    """The database is away (503): the page may be asked for again."""

    status = 503
    title = "Database unavailable"


class Moved(Exception):
    """The page is at another address (a child's id asked for as a root): 303 there."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class ServerError(PageError):
    """The page failed on the server (500); the log has the details, the page does not."""

    status = 500
    title = "Server error"
