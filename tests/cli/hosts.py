"""The task host as a process of its own in the CLI tests.

`endaction agent serve` on a port of its own, restartable on the same port, its log in a file per
start (never a pipe: a host that logs a lot must not block on a pipe nobody reads).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from tests.http_hosts import free_port


class Host:
    """`endaction agent serve` on a port of its own, restartable on the same port.

    Its stderr goes to a file per start, never a pipe: a chatty host must not block on a full pipe,
    and the test reads what each start logged.
    """

    def __init__(self, storage: Path, *extra: str, logs: Path | None = None) -> None:
        """A host of `storage` on a free port, not started yet.

        `extra`: more `agent serve` options; `logs`: where its logs go (default: beside the storage
        directory).
        """
        self.storage, self.extra = storage, extra
        self.logs = logs if logs is not None else storage.parent
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None
        self.log: Path | None = None
        self._log_file: IO[str] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.log = self.logs / f"host-{self.starts}.log"
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "statemachines.cli", "agent", "serve", "--storage",
             str(self.storage), "--port", str(self.port), *self.extra],
            stdout=subprocess.DEVNULL, stderr=self._log_file, text=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/openapi.json", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, self.stderr()
            assert time.monotonic() < deadline, "the host did not come up"
            time.sleep(0.1)

    @property
    def token_file(self) -> Path:
        return self.storage / "agent-token"

    def stderr(self) -> str:
        return self.log.read_text() if self.log is not None else ""

    def healthy(self) -> bool:
        token = self.token_file.read_text().strip()
        answer = httpx.get(f"{self.url}/v1/health", timeout=10,
                           headers={"Authorization": f"Bearer {token}"})
        return answer.status_code == 200 and answer.json()["status"] == "ok"

    def stop(self) -> int | None:
        """SIGTERM, bounded; the exit status (None: it was not running)."""
        code = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
                raise AssertionError("the host did not stop within 30 s of SIGTERM") from None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def client(self) -> httpx.Client:
        """An HTTP client that presents the host's token."""
        token = self.token_file.read_text().strip()
        return httpx.Client(base_url=self.url, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
