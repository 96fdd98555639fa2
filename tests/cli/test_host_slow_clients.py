"""The slow-client attack on the task host, as a process limited to 256 open files.

300 connections send a request line and one header, then nothing. Engines that hold the token are
answered within their timeout all along, the half-open connections are closed by the host within its
request deadline, and its log stays a few counted lines (no traceback per event, no "Too many open
files").
"""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from statemachines.http import HttpAgent
from tests.http_hosts import free_port

pytestmark = pytest.mark.slow
FILES = 256
ATTACKERS = 300


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILES, FILES))


def _half_open(port: int) -> socket.socket | None:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return None  # refused at once is fine too: it costs the host nothing
    sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: attacker\r\n")
    return sock


def _closed_by_host(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        data = sock.recv(4096)
    except TimeoutError:
        return False
    except OSError:
        return True
    return data == b"" or data.startswith(b"HTTP/1.1 503")


def test_half_open_connections_cannot_stall_the_host(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "host.log"
    with log_path.open("w") as log:
        host = subprocess.Popen(
            [sys.executable, "-m", "statemachines.cli", "agent", "serve", "--storage",
             str(tmp_path / "storage"), "--port", str(port), "--request-timeout", "3"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_limited)
    url = f"http://127.0.0.1:{port}"
    attackers: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                assert host.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the host did not come up"
                time.sleep(0.1)
        token = (tmp_path / "storage" / "agent-token").read_text().strip()
        began = time.monotonic()
        attackers = [s for s in (_half_open(port) for _ in range(ATTACKERS)) if s is not None]
        opened = time.monotonic() - began
        engine = HttpAgent(url, token, timeout=10.0)
        took = []
        try:
            for _ in range(5):  # while the attackers hold what they can
                started = time.monotonic()
                assert engine.health()["protocol"] == 1
                took.append(time.monotonic() - started)
                time.sleep(0.2)
        finally:
            engine.close()
        print(f"{len(attackers)} half-open connections in {opened:.1f} s; the engine's "
              f"answers took {', '.join(f'{t * 1000:.0f} ms' for t in took)}")
        assert max(took) < 10.0
        time.sleep(4)  # past the request deadline: every half-open connection is gone
        still_open = [s for s in attackers if not _closed_by_host(s)]
        assert still_open == [], f"{len(still_open)} half-open connection(s) still open"
        assert httpx.get(f"{url}/v1/health", timeout=5,
                         headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        for sock in attackers:
            sock.close()
        host.send_signal(signal.SIGTERM)
        try:
            host.wait(timeout=30)
        except subprocess.TimeoutExpired:
            host.kill()
    text = log_path.read_text()
    print(f"the host's log: {len(text.splitlines())} line(s), {len(text)} bytes")
    assert host.returncode == 0, text[-3000:]
    assert len(text) < 1_000_000
    assert "Traceback" not in text and "Too many open files" not in text, text[-3000:]
    assert "closed to make room" in text or "closed for not sending a request" in text, text
