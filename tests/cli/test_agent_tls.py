"""The storage host over TLS, as processes on loopback, with certificates the test makes.

The certificates come from trustme. The demo runs through the host with the token on top; an engine
that does not trust the host's certificate, or that a mutual-TLS host does not trust, fails at once
with one line that says so (no retry storm); the end state is judged from the database and the
files.
"""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.judge import judge
from tests.http_hosts import free_port
from tests.worlds import vm_store

trustme = pytest.importorskip("trustme", reason="the TLS tests make certificates with trustme")
pytestmark = pytest.mark.slow


class TlsHost:
    def __init__(self, folder: Path, *, mutual: bool) -> None:
        self.folder = folder
        self.ca = trustme.CA()
        self.ca.cert_pem.write_to_path(str(folder / "ca.pem"))
        server = self.ca.issue_cert("127.0.0.1")
        server.private_key_and_cert_chain_pem.write_to_path(str(folder / "host.pem"))
        client = self.ca.issue_cert("engine@example.org")
        client.cert_chain_pems[0].write_to_path(str(folder / "engine.crt"))
        client.private_key_pem.write_to_path(str(folder / "engine.key"))
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.storage = folder / "storage"
        args = ["--tls-cert", str(folder / "host.pem"), "--tls-key", str(folder / "host.pem")]
        if mutual:
            args += ["--tls-client-ca", str(folder / "ca.pem")]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "statemachines.cli", "agent", "serve", "--storage",
             str(self.storage), "--port", str(self.port), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        context = ssl.create_default_context(cafile=str(folder / "ca.pem"))
        if mutual:
            context.load_cert_chain(str(folder / "engine.crt"), str(folder / "engine.key"))
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/openapi.json", timeout=1,
                             verify=context).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, self.process.communicate()[1]
            assert time.monotonic() < deadline, "the host did not come up"
            time.sleep(0.1)

    def demo(self, db: Path, *tls: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "statemachines.cli", "demo", "--images", "4", "--fail", "1",
             "--db", str(db), "--agent-url", self.url, "--agent-token-file",
             str(self.storage / "agent-token"), "--json", *tls],
            capture_output=True, text=True, timeout=180, check=False)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err


@pytest.fixture
def host(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TlsHost]:
    started = TlsHost(tmp_path, mutual=getattr(request, "param", False))
    yield started
    started.stop()


def _judged(db: Path, storage: Path) -> list[str]:
    store = vm_store(str(db), create=False)
    try:
        return judge(store, storage)
    finally:
        store.dispose()


def test_the_demo_runs_through_a_host_over_tls_with_its_token(host: TlsHost,
                                                               tmp_path: Path) -> None:
    ran = host.demo(tmp_path / "d.db", "--agent-ca", str(tmp_path / "ca.pem"))
    assert ran.returncode == 5, ran.stderr[-2000:]  # disk 1 failed: rolled back cleanly
    assert _judged(tmp_path / "d.db", host.storage) == []
    # The token is still required on top of TLS.
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    assert httpx.get(f"{host.url}/v1/health", verify=context).status_code == 401


def test_an_engine_that_does_not_trust_the_host_fails_at_once_saying_why(
        host: TlsHost, tmp_path: Path) -> None:
    started = time.monotonic()
    ran = host.demo(tmp_path / "d.db")  # the system's CAs: the test's CA is not among them
    took = time.monotonic() - started
    assert ran.returncode == 1, ran.stderr[-2000:]
    errors = [line for line in ran.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "could not be trusted" in errors[0]
    assert "its certificate was refused: unable to get local issuer" in errors[0], errors[0]
    assert "Traceback" not in ran.stderr
    assert took < 30  # no retries of a refusal that would only repeat


@pytest.mark.parametrize("host", [True], indirect=True)
def test_a_mutual_tls_host_refuses_an_engine_without_a_certificate(host: TlsHost,
                                                                    tmp_path: Path) -> None:
    refused = host.demo(tmp_path / "a.db", "--agent-ca", str(tmp_path / "ca.pem"))
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert "Traceback" not in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "requires a client certificate" in errors[0], errors
    ran = host.demo(tmp_path / "b.db", "--agent-ca", str(tmp_path / "ca.pem"), "--agent-cert",
                    str(tmp_path / "engine.crt"), "--agent-key", str(tmp_path / "engine.key"))
    assert ran.returncode == 5, ran.stderr[-2000:]
    assert _judged(tmp_path / "b.db", host.storage) == []
