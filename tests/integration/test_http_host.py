"""The task-host protocol over real HTTP on loopback.

It covers what a host answers, who may call it, and what the engine makes of a host that is slow,
unreachable, refuses it or answers garbage. Each run ends every root exactly once and records the
error on the task.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from persistence import SqlStore
from statemachines import AgentError, CommandStatus, Limits, TaskReport, TaskStatus
from statemachines.core.machines.command_machine import TERMINAL_COMMAND_STATES
from statemachines.example.vm import LocalDiskAgent, SimulatedAgent
from statemachines.http import HttpAgent, host_app, openapi_document
from statemachines.http.protocol import MAX_BODY_BYTES
from tests.http_hosts import TOKEN, free_port, served
from tests.worlds import World, images_in, terminal_arrivals

ROOT = Path(__file__).resolve().parents[2]
LIMITS = Limits(agent_retry_seconds=0.01, max_agent_retry_seconds=0.05, task_timeout=600)


def _client(url: str, token: str = TOKEN, **options: Any) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                        timeout=5, **options)


def _ends_once(world: World, root: str) -> None:
    arrivals = terminal_arrivals(world.store, root)
    commands, tasks = world.store.tree(root)
    assert all(arrivals[c.id] == 1 for c in commands), arrivals
    assert all(t.status == TaskStatus.CLEARED for t in tasks) or any(
        t.status == TaskStatus.CLEAR_FAILED for t in tasks)


# -- the protocol --------------------------------------------------------------------------


def test_a_host_speaks_the_protocol(tmp_path: Path) -> None:
    disk = LocalDiskAgent(tmp_path / "storage")
    disk.ensure_template("t0", 4096)
    try:
        with served(host_app(disk, TOKEN)) as url, _client(url) as http:
            assert http.get("/v1/health").json()["protocol"] == 1
            body = {"verb": "copy_image", "parameters": {"image": "i0", "source": "t0"}}
            assert http.put("/v1/tasks/task1", json=body).json() == {"task_id": "task1",
                                                                      "started": True}
            assert http.put("/v1/tasks/task1", json=body).status_code == 200  # idempotent
            deadline = time.monotonic() + 10
            while True:
                tasks = http.post("/v1/poll", json={"task_ids": ["task1", "nope"]}).json()
                assert set(tasks["tasks"]) == {"task1"}  # unknown ids are left out
                if tasks["tasks"]["task1"]["status"] == "finished":
                    break
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert tasks["tasks"]["task1"]["result"] == "success"
            assert http.delete("/v1/tasks/task1").json()["cleared"] is True
            assert http.post("/v1/poll", json={"task_ids": ["task1"]}).json() == {"tasks": {}}
            assert http.post("/v1/tasks/task1/abort").status_code == 200
    finally:
        disk.close()


def test_the_served_document_is_the_one_in_docs(tmp_path: Path) -> None:
    documented = json.loads((ROOT / "docs" / "reference" / "task-host-openapi.json").read_text())
    assert documented == openapi_document()
    with served(host_app(SimulatedAgent(), TOKEN)) as url:
        served_doc = httpx.get(f"{url}/openapi.json").json()  # no token needed to read it
    assert served_doc == documented
    paths = set(served_doc["paths"])
    assert {"/v1/health", "/v1/poll", "/v1/tasks/{task_id}", "/v1/tasks/{task_id}/abort"} <= paths


def test_callers_without_the_token_are_refused_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    agent = SimulatedAgent()
    caplog.set_level(logging.WARNING, logger="endaction.host")
    with served(host_app(agent, TOKEN)) as url:
        assert httpx.get(f"{url}/v1/health").status_code == 401
        with _client(url, token="wrong-token-0123456789") as http:
            refused = http.put("/v1/tasks/t1", json={"verb": "copy_image", "parameters": {}})
            assert refused.status_code == 401
        almost = _client(url, token=TOKEN[:-1])
        assert almost.get("/v1/health").status_code == 401
        almost.close()
    assert not agent.tasks, "a refused start reached the agent"
    assert "no token" in caplog.text and "wrong token" in caplog.text
    assert TOKEN not in caplog.text and "wrong-token" not in caplog.text


def test_malformed_requests_are_refused_by_name(tmp_path: Path) -> None:
    disk = LocalDiskAgent(tmp_path / "storage")
    try:
        with served(host_app(disk, TOKEN)) as url, _client(url) as http:
            escaping = http.put("/v1/tasks/t1", json={
                "verb": "copy_image", "parameters": {"image": "../../etc/x", "source": "t0"}})
            assert escaping.status_code == 422 and escaping.json()["rejected"] is True
            assert http.put("/v1/tasks/t1", content=b"{not json").status_code == 400
            assert http.put("/v1/tasks/t1", json=[1, 2]).status_code == 400
            assert http.put("/v1/tasks/t1", json={"verb": ""}).status_code == 400
            assert http.put("/v1/tasks/a.b", json={"verb": "copy_image"}).status_code == 400
            assert http.post("/v1/poll", json={"task_ids": "t1"}).status_code == 400
            huge = http.put("/v1/tasks/t2", content=b"x" * (MAX_BODY_BYTES + 1),
                            headers={"Content-Type": "application/json"})
            assert huge.status_code == 413

            def chunks() -> Any:
                for _ in range(MAX_BODY_BYTES // 65536 + 2):
                    yield b" " * 65536

            streamed = http.put("/v1/tasks/t3", content=chunks(),
                                headers={"Content-Type": "application/json"})
            assert streamed.status_code == 413  # no length given: cut off while read
        assert not list((tmp_path / "storage" / "images").iterdir())
    finally:
        disk.close()


# -- the engine over HTTP -------------------------------------------------------------------


def test_the_engine_runs_a_rollback_through_an_http_host(sqlite_store: SqlStore) -> None:
    agent = SimulatedAgent()
    with served(host_app(agent, TOKEN)) as url:
        remote = HttpAgent(url, TOKEN)
        world = World(sqlite_store, agent=agent)
        engine = world.engine(agents={"storage": remote}, limits=LIMITS)
        root = world.submit_vm(engine, 3, fail=(1,))
        engine.run_until_idle()
        remote.close()
    assert sqlite_store.command(root).status == CommandStatus.ENDED_FAILURE  # type: ignore[union-attr]
    assert agent.images == set() and images_in(sqlite_store) == []
    _ends_once(world, root)


def test_outputs_cross_the_wire_and_feed_the_next_step(tmp_path: Path) -> None:
    """The tenant onboarding with each of its three services behind its own HTTP host.

    The bucket's ARN and the database's connection string travel back in poll answers, and the
    certificate request the engine sends on is made of them.
    """
    from contextlib import ExitStack

    from persistence import open_store
    from statemachines import Engine
    from statemachines.testing import ManualClock
    from tests.tenant import TENANT_LEDGERS, TenantHosts, tenant_parameters, tenant_registry

    hosts = TenantHosts()
    store = open_store(str(tmp_path / "tenants.db"), ledgers=TENANT_LEDGERS)
    with ExitStack() as stack:
        remote = {name: HttpAgent(stack.enter_context(served(host_app(agent, TOKEN))), TOKEN)
                  for name, agent in hosts.agents().items()}
        clock = ManualClock()
        engine = Engine(store, remote, tenant_registry(), clock=clock, sleep=clock.sleep,
                        limits=LIMITS)
        root = engine.submit("OnboardTenant", tenant_parameters("acme"))
        engine.run_until_idle()
        for agent in remote.values():
            agent.close()
    commands, tasks = store.tree(root)
    top = next(c for c in commands if c.id == root)
    assert top.status == CommandStatus.ENDED_SUCCESS
    certificate = next(t for t in tasks if t.verb == "issue_certificate")
    assert (certificate.parameters["bucket_arn"], certificate.parameters["dsn"]) == (
        "arn:objects:::acme-data", "postgresql://db.internal:5432/acme")
    assert top.output["certificate"] == certificate.output["serial"]
    assert list(hosts.certificates) == [certificate.output["serial"]]
    store.dispose()


def test_an_unreachable_host_costs_bounded_retries_and_the_error_is_recorded(
        sqlite_store: SqlStore) -> None:
    remote = HttpAgent(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=0.5, retries=1,
                       backoff=0.01)
    world = World(sqlite_store)
    engine = world.engine(agents={"storage": remote}, limits=LIMITS)
    root = world.submit_vm(engine, 2)
    engine.run_until_idle()
    remote.close()
    commands, tasks = sqlite_store.tree(root)
    assert next(c for c in commands if c.id == root).status in TERMINAL_COMMAND_STATES
    copies = [t for t in tasks if t.verb == "copy_image"]
    assert copies and all(t.status == TaskStatus.CLEARED or t.status == TaskStatus.START_FAILED
                          or t.status == TaskStatus.CLEAR_FAILED for t in copies)
    assert all("did not answer" in (t.message or "") for t in copies), [t.message for t in copies]
    _ends_once(world, root)


def test_a_wrong_token_is_recorded_on_the_task_and_never_logged(
        sqlite_store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    agent = SimulatedAgent()
    with served(host_app(agent, TOKEN)) as url:
        remote = HttpAgent(url, "not-the-token-0123456789")
        world = World(sqlite_store, agent=agent)
        engine = world.engine(agents={"storage": remote}, limits=LIMITS)
        root = world.submit_vm(engine, 1)
        engine.run_until_idle()
        remote.close()
    _, tasks = sqlite_store.tree(root)
    assert any("token was not accepted" in (t.message or "") for t in tasks)
    assert not agent.tasks
    assert "not-the-token" not in caplog.text and TOKEN not in caplog.text
    _ends_once(world, root)


class SlowAgent(SimulatedAgent):
    """Answers its first `slow_calls` calls only after `delay` seconds."""

    def __init__(self, delay: float, slow_calls: int) -> None:
        super().__init__()
        self.delay, self.slow_calls = delay, slow_calls
        self.lock = threading.Lock()
        self.runs: Counter[str] = Counter()  # how often each task id began to run

    def _maybe_slow(self) -> None:
        with self.lock:
            slow = self.slow_calls > 0
            self.slow_calls -= 1
        if slow:
            time.sleep(self.delay)

    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        self._maybe_slow()
        with self.lock:
            new = task_id not in self.tasks
            super().start(task_id, verb, parameters)
            if new and task_id in self.tasks:
                self.runs[task_id] += 1

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        self._maybe_slow()
        return super().poll(task_ids)


def test_answers_slower_than_the_timeout_are_retried_and_the_run_ends(
        sqlite_store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="endaction.http_agent")
    agent = SlowAgent(delay=0.6, slow_calls=6)
    with served(host_app(agent, TOKEN)) as url:
        remote = HttpAgent(url, TOKEN, timeout=0.2, retries=1, backoff=0.01)
        world = World(sqlite_store, agent=agent)
        engine = world.engine(agents={"storage": remote}, limits=LIMITS)
        root = world.submit_vm(engine, 3, fail=(2,))
        engine.run_until_idle()
        remote.close()
    assert sqlite_store.command(root).status == CommandStatus.ENDED_FAILURE  # type: ignore[union-attr]
    assert agent.slow_calls <= 0, "the host was never slow: the test proved nothing"
    assert "failed (ReadTimeout); trying again" in caplog.text
    # Retried starts reached the host more than once, and still started each task once.
    _, tasks = sqlite_store.tree(root)
    assert set(agent.runs) == {t.id for t in tasks} and set(agent.runs.values()) == {1}
    assert agent.images == set() and images_in(sqlite_store) == []
    _ends_once(world, root)


def _garbage_host(kind: str, inner: Any) -> Any:
    """A host whose poll answers go wrong in one way; everything else is the real host's."""
    calls = {"poll": 0}
    previous: dict[str, bytes] = {}

    async def poll(request: Request) -> Response:
        calls["poll"] += 1
        body = await request.body()
        if kind == "garbage" and calls["poll"] % 2:
            return PlainTextResponse("<html>proxy error</html>", status_code=200)
        if kind == "truncated" and calls["poll"] % 2:
            return Response(b'{"tasks": {"', media_type="application/json")
        if kind == "bad-entries" and calls["poll"] == 2:
            ids = json.loads(body)["task_ids"]
            return JSONResponse({"tasks": {i: {"status": "exploded"} for i in ids}})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=inner),
                                     base_url="http://inner") as client:
            answer = await client.post("/v1/poll", content=body,
                                       headers={"Authorization": f"Bearer {TOKEN}",
                                                "Content-Type": "application/json"})
        if kind == "twice" and "last" in previous and calls["poll"] % 2 == 0:
            content = previous["last"]  # the previous answer, delivered again
        else:
            content = answer.content
        previous["last"] = answer.content
        return Response(content, status_code=answer.status_code, media_type="application/json")

    async def passthrough(request: Request) -> Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=inner),
                                     base_url="http://inner") as client:
            answer = await client.request(request.method, request.url.path,
                                          content=await request.body(),
                                          headers={"Authorization": f"Bearer {TOKEN}",
                                                   "Content-Type": "application/json"})
        return Response(answer.content, status_code=answer.status_code,
                        media_type="application/json")

    return Starlette(routes=[
        Route("/v1/poll", poll, methods=["POST"]),
        Route("/v1/{rest:path}", passthrough, methods=["GET", "PUT", "DELETE", "POST"]),
    ])


class WatchedAgent(HttpAgent):
    """Keeps the errors its polls raised: what the engine was told, before it retried."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.errors: list[str] = []

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        try:
            return super().poll(task_ids)
        except AgentError as err:
            self.errors.append(str(err))
            raise


@pytest.mark.parametrize("kind", ["garbage", "truncated", "bad-entries", "twice"])
def test_bad_or_repeated_answers_end_every_root_once(sqlite_store: SqlStore, kind: str) -> None:
    agent = SimulatedAgent()
    with served(_garbage_host(kind, host_app(agent, TOKEN))) as url:
        remote = WatchedAgent(url, TOKEN)
        world = World(sqlite_store, agent=agent)
        engine = world.engine(agents={"storage": remote}, limits=LIMITS)
        roots = [world.submit_vm(engine, 2, fail=(1,) if i % 2 else (), vm=f"vm{i}")
                 for i in range(3)]
        engine.run_until_idle()
        remote.close()
    for root in roots:
        assert sqlite_store.command(root).status in TERMINAL_COMMAND_STATES  # type: ignore[union-attr]
        _ends_once(world, root)
    created = {r for r in roots
               if sqlite_store.command(r).status == CommandStatus.ENDED_SUCCESS}  # type: ignore[union-attr]
    expected = {f"{sqlite_store.command(r).parameters['vm']}-disk{d}"  # type: ignore[union-attr]
                for r in created for d in range(2)}
    assert agent.images == expected
    assert {row.id for row in images_in(sqlite_store)} == expected
    if kind in ("garbage", "truncated"):
        assert remote.errors and all("answered garbage" in e for e in remote.errors)
    if kind == "bad-entries":
        messages = [t.message or "" for r in roots for t in sqlite_store.tree(r)[1]]
        assert any("garbage" in m and "exploded" in m for m in messages), messages


def test_the_client_never_retries_what_the_host_said() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(503, json={"error": "disk on fire"})

    remote = HttpAgent("http://host", TOKEN, transport=httpx.MockTransport(handler),
                       retries=3)
    with pytest.raises(AgentError, match="HTTP 503: disk on fire"):
        remote.start("t1", "copy_image", {})
    assert calls["n"] == 1


# -- found by attacking it ------------------------------------------------------------------


def test_a_host_trickling_its_answer_costs_a_bounded_wait() -> None:
    async def trickle(request: Request) -> Response:
        async def body() -> Any:
            for _ in range(100):
                yield b" "
                await asyncio.sleep(0.3)

        return StreamingResponse(body(), media_type="application/json")

    app = Starlette(routes=[Route("/v1/poll", trickle, methods=["POST"])])
    with served(app) as url:
        remote = HttpAgent(url, TOKEN, timeout=1.0, retries=1, backoff=0.01)
        started = time.monotonic()
        with pytest.raises(AgentError, match="did not answer"):
            remote.poll(["t1"])
        remote.close()
    assert time.monotonic() - started < 6, "each read was bounded, the whole answer was not"


def test_what_the_attack_found_in_the_host_is_refused_or_named(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="endaction.host")

    class Broken(SimulatedAgent):
        def clear(self, task_id: str) -> None:
            raise PermissionError("read-only file system")

    disk = LocalDiskAgent(tmp_path / "storage")
    try:
        with served(host_app(disk, TOKEN)) as url, _client(url) as http:
            nul = http.put("/v1/tasks/t1", json={
                "verb": "copy_image", "parameters": {"image": "a\u0000b", "source": "t0"}})
            assert nul.status_code == 422
            deep = http.post("/v1/poll", content=b"[" * 100_000,
                             headers={"Content-Type": "application/json"})
            assert deep.status_code == 400 and "nested" in deep.json()["error"]
            twice = httpx.get(f"{url}/v1/health", headers=[
                ("Authorization", "Bearer wrong-token-0123456789"),
                ("Authorization", f"Bearer {TOKEN}")])
            assert twice.status_code == 401
            forged = http.get("/v1/health%0aWARNING%20endaction.host:%20forged")
            assert forged.status_code in (401, 404)
            httpx.get(f"{url}/v1/x%0aWARNING%20forged")
        with served(host_app(Broken(), TOKEN)) as url, _client(url) as http:
            failed = http.delete("/v1/tasks/t1")
            assert failed.status_code == 503
            assert "PermissionError: read-only file system" in failed.json()["error"]
    finally:
        disk.close()
    assert "several Authorization headers" in caplog.text
    assert not any(line.startswith("WARNING endaction.host: forged")
                   for line in caplog.text.splitlines())
    assert "\\n" in caplog.text or "forged" not in caplog.text


def test_the_template_route_keeps_the_body_bound(tmp_path: Path) -> None:
    from statemachines.example.vm.storage_host import storage_app

    disk = LocalDiskAgent(tmp_path / "storage")

    def chunks() -> Any:
        yield b'{"size": 1, "pad": "'
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    try:
        with served(storage_app(disk, TOKEN)) as url, _client(url) as http:
            big = http.put("/v1/storage/templates/t0", content=chunks(),
                           headers={"Content-Type": "application/json"})
            assert big.status_code == 413
            assert http.put("/v1/storage/templates/t0", json={"size": 10}).status_code == 200
            assert http.put("/v1/storage/templates/..", json={"size": 10}).status_code in (
                400, 404)
    finally:
        disk.close()
    assert (tmp_path / "storage" / "templates" / "t0.img").stat().st_size == 10
