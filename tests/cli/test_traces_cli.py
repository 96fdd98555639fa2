"""The CLI's processes emit traces when the standard OTEL_* variables ask for them.

They go over OTLP to a collector (here a tiny one in the test), or on stderr; and the processes
refuse by name what this installation cannot do. Processes of their own: the global tracer provider
is set once per process, and the test process must keep its own unset.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.cli.runner import Ran, endaction


class Collector:
    """An OTLP/HTTP receiver: every span POSTed to /v1/traces, decoded."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.paths: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                collector.paths.append(self.path)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        collector.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector()
    thread = threading.Thread(target=found.server.serve_forever, daemon=True)
    thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


def _process(tmp_path: Path, env: dict[str, str], *args: str) -> Ran:
    where = ("--db", str(tmp_path / "demo.db"), "--storage", str(tmp_path / "storage"))
    done = subprocess.run([sys.executable, "-m", "statemachines.cli", *args, *where],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **env})
    return Ran(done.returncode, done.stdout, done.stderr)


@pytest.mark.slow
def test_a_crashed_demo_resumed_sends_one_whole_trace_to_the_collector(
    tmp_path: Path, collector: Collector,
) -> None:
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
           "OTEL_SERVICE_NAME": "endaction-test"}
    crashed = _process(tmp_path, env, "demo", "--images", "3", "--fail", "1",
                       "--crash-after", "4")
    assert crashed.returncode == -9, crashed.stderr
    assert collector.spans == [], "the root had not ended: nothing to send yet"
    resumed = _process(tmp_path, env, "resume", "--json")
    assert resumed.returncode == 5, resumed.stderr
    report = json.loads(resumed.stdout)
    root = report["root"]["id"]
    assert set(collector.paths) == {"/v1/traces"}
    spans = collector.spans
    assert len(spans) == len(report["commands"]) + len(report["tasks"])
    assert {s.trace_id.hex() for s in spans} == {root}
    ids = {s.span_id for s in spans}
    by_name = {s.name for s in spans}
    assert {"AddVmFromTemplate", "CreateCloneOfTemplate", "RemoveImage", "copy_image",
            "delete_image"} == by_name
    (top,) = [s for s in spans if not s.parent_span_id]
    assert top.name == "AddVmFromTemplate"
    assert all(s.parent_span_id in ids for s in spans if s is not top)
    assert any(e.name == "recover" for e in top.events)


def test_console_traces_go_to_stderr_and_leave_the_report_alone(tmp_path: Path) -> None:
    ran = _process(tmp_path, {"OTEL_TRACES_EXPORTER": "console"}, "demo", "--images", "2",
                   "--fail", "0", "--json")
    assert ran.returncode == 5, ran.stderr
    root = json.loads(ran.stdout)["root"]["id"]  # stdout is the report alone
    assert f'"trace_id": "0x{root}"' in ran.stderr
    assert '"name": "RemoveImage"' in ran.stderr


def test_an_exporter_that_is_not_installed_is_refused_by_name(tmp_path: Path) -> None:
    ran = endaction("demo", "--images", "1", "--db", str(tmp_path / "d.db"),
                    "--storage", str(tmp_path / "s"), env={"OTEL_TRACES_EXPORTER": "zipkin"})
    assert ran.returncode == 2
    assert "exporter 'zipkin', which is not installed" in ran.stderr
    assert "console" in ran.stderr  # what is installed
    assert not (tmp_path / "d.db").exists(), "refused before anything was written"


def test_traces_asked_for_without_the_sdk_name_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for module in ("opentelemetry.sdk.resources", "opentelemetry.sdk.trace",
                   "opentelemetry.sdk.trace.export"):
        monkeypatch.setitem(sys.modules, module, None)  # an import of it fails
    ran = endaction("resume", "--db", str(tmp_path / "d.db"),
                    env={"OTEL_TRACES_EXPORTER": "otlp"})
    assert ran.returncode == 2
    assert "the OpenTelemetry SDK is not installed: pip install 'endaction[otel]'" in ran.stderr
