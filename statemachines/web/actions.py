"""The two things the web view may do besides reading: cancel a root, and clean up.

A cleanup reverts again what was left `revert_failed`. Both are offered only when the view is
started with `--allow-actions`, and only for a POST that carries the token.

The token is never put into a page: the operator types it into the form (or a script sends
`Authorization: Bearer <token>`), compared in constant time. A forged form on another site
cannot know it, so the token is also what stops cross-site requests, and a page left open
cannot be replayed by someone who only sees the screen.

A cleanup runs an engine, which may take as long as its opposite commands do: it runs in a
thread of its own (one at a time), and the leftovers page shows how it goes.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs

from starlette.requests import Request

from ..core.errors import EndactionError
from .errors import BadInput, Conflict, Forbidden

log = logging.getLogger("endaction.web")

MAX_FORM_BYTES = 8192
MIN_TOKEN_LENGTH = 16
REASON_LENGTH = 500


class TokenFileProblem(EndactionError):
    """The token file cannot be read, or holds no usable token."""


def read_token_file(token_file: Path) -> str:
    """The token in `token_file`, surrounding whitespace ignored; long enough to guess never."""
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise TokenFileProblem(f"cannot read the token file {token_file}: {err}") from err
    if len(token) < MIN_TOKEN_LENGTH:
        raise TokenFileProblem(f"the token in {token_file} is {len(token)} characters long; at "
                               f"least {MIN_TOKEN_LENGTH} are needed (e.g. `python3 -c "
                               "'import secrets; print(secrets.token_urlsafe(32))'`)")
    if not token.isascii() or not token.isprintable():
        raise TokenFileProblem(f"the token in {token_file} must be printable ASCII (it may go "
                               "in an HTTP header)")
    return token


async def form_of(request: Request) -> dict[str, str]:
    """The POST's form fields, URL-encoded, as a browser's form sends them.

    They are read only up to MAX_FORM_BYTES whatever the headers say; the last value of a
    repeated field wins.
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("", "application/x-www-form-urlencoded"):
        raise BadInput(f"a form must be application/x-www-form-urlencoded, not {kind[:80]!r}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise BadInput(f"the form is larger than {MAX_FORM_BYTES} bytes")
        chunks.append(chunk)
    try:
        fields = parse_qs(b"".join(chunks).decode("utf-8"), keep_blank_values=True,
                          strict_parsing=False, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as err:
        raise BadInput(f"the form cannot be read: {err}") from None
    return {key: values[-1] for key, values in fields.items()}


def require_token(token: str | None, request: Request, form: dict[str, str]) -> None:
    """Refuse (403) unless actions are allowed and the request carries the token."""
    if token is None:
        raise Forbidden("actions are off: this web view is read-only (start it with "
                        "`endaction ui --allow-actions --token-file F` to offer them)")
    given = form.get("token", "")
    header = request.headers.get("authorization", "")
    if not given and header.lower().startswith("bearer "):
        given = header[7:].strip()
    if not given:
        raise Forbidden("this action needs the token (the form's token field, or an "
                        "`Authorization: Bearer` header)")
    if not hmac.compare_digest(given.encode(), token.encode()):
        log.warning("an action was refused: wrong token from %s",
                    request.client.host if request.client else "an unknown client")
        raise Forbidden("wrong token")


def reason_of(form: dict[str, str], default: str) -> str:
    """The form's reason on one line, or `default` if it gives none.

    A reason longer than REASON_LENGTH characters is refused as bad input, not cut short.
    """
    reason = " ".join(form.get("reason", "").split()) or default
    if len(reason) > REASON_LENGTH:
        raise BadInput(f"the reason is {len(reason)} characters long; at most "
                       f"{REASON_LENGTH}")
    return reason


@dataclass(frozen=True)
class JobState:
    """What the last cleanup did, or is doing: shown on the leftovers page."""

    running: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    progress: str | None = None  # the engine's last word on what it waits for
    summary: str | None = None  # the cleanup's report, as `endaction cleanup` prints it
    failed: bool = False


class CleanupJob:
    """One cleanup at a time, in a thread: `work(note)` does it and returns its report."""

    def __init__(self, work: Callable[[Callable[[str], None]], str],
                 clock: Callable[[], float] = time.time) -> None:
        self._work = work
        self._clock = clock
        self._lock = threading.Lock()
        self._state = JobState()
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> JobState:
        """The last cleanup's state, whole: the thread replaces it under the same lock."""
        with self._lock:
            return self._state

    def start(self) -> None:
        """Start a cleanup; Conflict if one is running."""
        with self._lock:
            if self._state.running:
                raise Conflict("a cleanup is already running: wait for it to end")
            self._state = JobState(running=True, started_at=self._clock())
            self._thread = threading.Thread(target=self._run, name="endaction-web-cleanup",
                                            daemon=True)
            self._thread.start()

    def wait(self, timeout: float) -> bool:
        """Wait for the running cleanup; False if it is still running after `timeout`."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.state.running

    def _note(self, text: str) -> None:
        with self._lock:
            self._state = replace(self._state, progress=text)

    def _run(self) -> None:
        try:
            summary, failed = self._work(self._note), False
        except EndactionError as err:
            summary, failed = f"the cleanup failed: {err}", True
        except Exception as err:  # never a traceback on the page: the log has it
            log.exception("the cleanup failed")
            summary, failed = f"the cleanup failed: {type(err).__name__}: {err}", True
        with self._lock:
            self._state = replace(self._state, running=False, finished_at=self._clock(),
                                  summary=summary, failed=failed)
