"""The engine's side of an HTTP task host: an `Agent` (and `Abortable`) over the network.

Every call has its own timeout, so a host that stops answering costs a bounded wait, never a
hung tick. Transport failures (refused or dropped connections, timeouts) are retried a few
times with back-off inside the call: every call of the protocol is idempotent (a start is
keyed by the task id), so a retry that repeats a call the host did receive is harmless. What
the host says (a refusal, an error, garbage) is not retried here: it becomes an `AgentError`
(or `TaskRejected` for a refusal for good), which the engine records on the task and retries
with its own back-off and bounds. A host that did not answer at all, after the retries, is
an `AgentUnreachable`: the engine then asks it nothing more in that tick. The token is sent
in a header and never appears in a message or a log line.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..core.errors import InvalidConfiguration, extra_missing
from ..core.machines.host_status import TaskReport
from ..core.ports.agent_protocol import AgentError, AgentUnreachable, TaskRejected
from .protocol import POLL_CHUNK, PREFIX, report_from_json
from .tls import ClientTls, refused_certificate, tls_reason

try:
    import httpx
except ModuleNotFoundError as err:
    raise extra_missing(err, "http", "the HTTP task-host client (HttpAgent)") from err

# An answer larger than this is not one a host of this protocol gives (a poll of 10,000
# tasks is about 1 MB): reading stops there.
MAX_ANSWER_BYTES = 16 << 20

log = logging.getLogger("endaction.http_agent")


class HttpAgent:
    """An agent reached over HTTP at `url`.

    The host is `endaction agent serve`, or any host that implements the protocol in
    `docs/reference/task-host-protocol.md`.

    Args:
        url: the host's base URL, e.g. `http://127.0.0.1:8710`.
        token: the host's bearer token.
        timeout: seconds one HTTP request may take to connect, and then to answer in all.
        retries: further tries after a transport failure, `backoff` seconds apart, doubling.
        transport: an httpx transport, for tests.
        tls: for an `https://` host: the CA that signed its certificate (None: the system's
            CAs) and, for a host that asks for one, this engine's certificate and key.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 10.0, retries: int = 2,
                 backoff: float = 0.2, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 tls: ClientTls | None = None) -> None:
        self.url = url.rstrip("/")
        secure = self.url.lower().startswith("https://")
        if tls is not None and not secure:
            raise InvalidConfiguration(f"TLS settings for {self.url}: the host's URL must "
                                       "be https://")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._without_certificate = secure and (tls is None or tls.cert is None)
        self._client = httpx.Client(
            base_url=self.url, timeout=timeout, transport=transport,
            verify=(tls or ClientTls()).context() if secure else True,
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=4))

    # -- the Agent protocol ----------------------------------------------------------------
    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        """Put the task on the host at its id's path, so that a repeated start is harmless."""
        self._call("PUT", f"{PREFIX}/tasks/{task_id}",
                   {"verb": verb, "parameters": dict(parameters)}, f"start task {task_id}")

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        """Poll the host `POLL_CHUNK` ids per request; of each answer only the ids asked count.

        An answer without its `tasks` is an AgentError.
        """
        answer: dict[str, TaskReport] = {}
        for first in range(0, len(task_ids), POLL_CHUNK):
            chunk = list(task_ids[first:first + POLL_CHUNK])
            body = self._call("POST", f"{PREFIX}/poll", {"task_ids": chunk},
                              f"poll {len(chunk)} task(s)")
            tasks = body.get("tasks")
            if not isinstance(tasks, dict):
                raise AgentError(f"host {self.url} answered a poll without 'tasks': "
                                 f"{json.dumps(body)[:200]}")
            asked = set(chunk)
            answer.update((task_id, report_from_json(task_id, entry))
                          for task_id, entry in tasks.items() if task_id in asked)
        return answer

    def clear(self, task_id: str) -> None:
        """Delete the task on the host, which forgets it."""
        self._call("DELETE", f"{PREFIX}/tasks/{task_id}", None, f"clear task {task_id}")

    def abort(self, task_id: str) -> None:
        """Ask the host to abort the task; its end comes with a later poll."""
        self._call("POST", f"{PREFIX}/tasks/{task_id}/abort", None, f"abort task {task_id}")

    # -- beyond the protocol ---------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """The host's `/v1/health` answer (its protocol version and name)."""
        return self._call("GET", f"{PREFIX}/health", None, "check its health")

    def close(self) -> None:
        """Close the HTTP client and its pooled connections; no call may follow."""
        self._client.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None,
              doing: str) -> dict[str, Any]:
        """One protocol call: transport failures retried; what the host said, judged."""
        attempt = 0
        while True:
            try:
                status, content = self._exchange(method, path, body)
                break
            except httpx.TransportError as err:
                if refused_certificate(err):  # retrying would only repeat the refusal
                    raise AgentError(f"host {self.url} could not be trusted to {doing}: "
                                     f"{tls_reason(err)}") from err
                if attempt >= self.retries:
                    raise AgentUnreachable(f"host {self.url} did not answer to {doing} after "
                                           f"{attempt + 1} tries: {type(err).__name__}: {err}"
                                           f"{self._certificate_hint(err)}") from err
                delay = self.backoff * 2 ** attempt
                log.info("host %s: %s failed (%s); trying again in %.2f s", self.url, doing,
                         type(err).__name__, delay)
                self._sleep(delay)
                attempt += 1
        return self._judge(status, content, doing)

    def _certificate_hint(self, err: httpx.TransportError) -> str:
        """A hint to add to the error when the host may have wanted a client certificate.

        Over TLS 1.3 a host that requires a client certificate refuses one that is missing
        after the handshake, by closing the connection: say so, since the error itself names
        no certificate.
        """
        if self._without_certificate and isinstance(err, httpx.RemoteProtocolError
                                                    | httpx.ReadError):
            return (" (a host that requires a client certificate closes the connection so: "
                    "give one with --agent-cert and --agent-key)")
        return ""

    def _exchange(self, method: str, path: str,
                  body: dict[str, Any] | None) -> tuple[int, bytes]:
        """Send, and read the answer within `timeout` in all, and up to a bounded size.

        httpx's timeouts bound each read, so a host trickling a byte at a time would otherwise
        hold the tick forever.
        """
        deadline = time.monotonic() + self.timeout
        with self._client.stream(method, path, json=body) as response:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise httpx.ReadError(f"the answer is over {MAX_ANSWER_BYTES} bytes")
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout(f"the answer took over {self.timeout:g} s")
            return response.status_code, b"".join(chunks)

    def _judge(self, status: int, content: bytes, doing: str) -> dict[str, Any]:
        try:
            body = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            body = None
        text = content[:200].decode("utf-8", errors="replace")
        said = (body.get("error") if isinstance(body, dict) else None) or text.strip()
        if status == 401:
            raise AgentError(f"host {self.url} refused to {doing}: the token was not accepted "
                             "(401)")
        if status == 422 and isinstance(body, dict) and body.get("rejected"):
            raise TaskRejected(f"host {self.url} rejected it: {said}")
        if status >= 400:
            raise AgentError(f"host {self.url} failed to {doing}: HTTP {status}: {said}")
        if not isinstance(body, dict):
            raise AgentError(f"host {self.url} answered garbage to {doing}: {text!r}")
        return body
