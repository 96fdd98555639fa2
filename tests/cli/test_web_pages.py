"""The web view's contracts, in process (Starlette's TestClient).

What each page shows of a real demo database, and what it refuses (404 unknown ids, 400 malformed
input, 403 actions without the token), paging with `endaction list`'s cursor, and reading a page at
a time.
"""

from __future__ import annotations

import html
import json
import re
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette would rather have httpx2 drive its TestClient; httpx (a dependency) still does.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from persistence import SqlStore, open_store
from persistence.revert_listing import failed_reverts_page
from statemachines.diagrams import GraphvizMissing
from statemachines.toolkit.agent_options import AgentChoice
from statemachines.toolkit.app_option import load_app
from statemachines.web import CleanupJob, Site, web_app
from statemachines.web.app import LOOPBACK_HOSTS
from statemachines.web.cleanup import cleanup_work
from statemachines.web.leftovers_page import decode_cursor, encode_cursor
from tests.cli.runner import endaction

TOKEN = "a-token-long-enough-for-the-web-view"
VM_APP = "statemachines.example.vm:app"


def _demo(folder: Path, *args: str) -> dict[str, Any]:
    done = endaction("demo", "--json", "--db", str(folder / "web.db"),
                     "--storage", str(folder / "storage"), *args)
    assert done.returncode in (0, 3, 5), done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three roots: rolled back, succeeded, one with a leftover; newest is the last."""
    folder = tmp_path_factory.mktemp("web")
    rolled = _demo(folder, "--images", "3", "--fail", "1")
    done = _demo(folder, "--images", "2")
    left = _demo(folder, "--images", "3", "--fail", "1", "--fail-rollback", "2")
    return {"folder": folder, "db": str(folder / "web.db"), "rolled_back": rolled,
            "succeeded": done, "leftover": left}


@pytest.fixture(scope="module")
def store(demos: dict[str, Any]) -> Iterator[SqlStore]:
    opened = open_store(demos["db"], create=False)
    yield opened
    opened.dispose()


def _client(store: SqlStore, token: str | None = None, cleanup: CleanupJob | None = None,
            **options: Any) -> TestClient:
    site = Site(database=store.url, app_name="vm", actions=token is not None, refresh=0)
    return TestClient(web_app(store, site, token=token, cleanup=cleanup, **options),
                      follow_redirects=False)


@pytest.fixture(scope="module")
def client(store: SqlStore) -> TestClient:
    return _client(store)


def root_ids(page: str) -> list[str]:
    return re.findall(r'<tr data-root="([0-9a-f]+)"', page)


def test_the_roots_page_lists_the_roots_newest_first(client: TestClient,
                                                     demos: dict[str, Any]) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert root_ids(page.text) == [demos[k]["root"]["id"]
                                   for k in ("leftover", "succeeded", "rolled_back")]
    assert 'data-state="rollback_failed"' in page.text
    assert 'data-outcome="rolled_back"' in page.text
    assert "injected failure" in page.text  # the cause


def test_the_roots_page_filters_by_status_and_type(client: TestClient,
                                                   demos: dict[str, Any]) -> None:
    assert root_ids(client.get("/?status=ended_success").text) == [
        demos["succeeded"]["root"]["id"]]
    assert root_ids(client.get("/?type=AddVmFromTemplate&status=").text) != []
    assert "no roots NoSuchType" in client.get("/?type=NoSuchType").text


def test_paging_uses_the_cursor_of_endaction_list(client: TestClient, demos: dict[str, Any],
                                                  ) -> None:
    seen: list[str] = []
    address = "/?limit=1"
    for _ in range(5):
        page = client.get(address)
        assert page.status_code == 200
        seen += root_ids(page.text)
        found = re.search(r'<a class="next" rel="next" href="([^"]+)"', page.text)
        if found is None:
            break
        address = found[1].replace("&amp;", "&")
    assert seen == [demos[k]["root"]["id"] for k in ("leftover", "succeeded", "rolled_back")]
    # The page's cursor is the one `endaction list` prints and takes.
    listed = endaction("list", "--db", demos["db"], "--limit", "1", "--json")
    cursor = json.loads(listed.stdout)["next"]
    assert root_ids(client.get("/", params={"before": cursor, "limit": "1"}).text) == [
        demos["succeeded"]["root"]["id"]]


@pytest.mark.parametrize("query, named", [
    ("before=not-a-cursor", "before="), ("before=1.5", "before="), ("before=nan/x", "before="),
    ("status=sleeping", "status="), ("limit=0", "limit="), ("limit=100000000", "limit="),
    ("limit=%C2%B2", "limit="), ("since=yesterday", "since="), ("colour=red", "'colour'"),
])
def test_malformed_filters_and_cursors_are_400_naming_them(client: TestClient, query: str,
                                                           named: str) -> None:
    page = client.get(f"/?{query}")
    assert page.status_code == 400
    assert named in html.unescape(page.text)
    assert "Traceback" not in page.text


def test_the_tree_shows_every_command_with_its_state_and_cause(
        client: TestClient, demos: dict[str, Any]) -> None:
    report = demos["rolled_back"]
    page = client.get(f"/roots/{report['root']['id']}")
    assert page.status_code == 200
    for command in report["commands"]:
        block = re.search(rf'<li class="command" id="c-{command["id"]}"[^>]*'
                          rf'data-status="([a-z_]+)"', page.text)
        assert block is not None, command["id"]
        assert block[1] == command["status"]
    for task in report["tasks"]:
        assert f'id="t-{task["id"]}"' in page.text
    failed = next(c for c in report["commands"] if c["outcome"] == "failed")
    assert failed["error"].split(": ", 1)[1][:40] in html.unescape(page.text)


def test_unknown_ids_are_404_and_a_child_redirects_to_its_root(
        client: TestClient, demos: dict[str, Any]) -> None:
    for address in ("/roots/0123", "/roots/0123/history", "/machine/0123", "/no/such/page"):
        page = client.get(address)
        assert page.status_code == 404, address
        assert "Not" in page.text
    report = demos["rolled_back"]
    child = next(c for c in report["commands"] if c["parent_id"] == report["root"]["id"])
    moved = client.get(f"/roots/{child['id']}")
    assert moved.status_code == 303
    assert moved.headers["location"] == f"/roots/{report['root']['id']}#c-{child['id']}"


def test_what_a_page_echoes_is_escaped(client: TestClient) -> None:
    page = client.get("/roots/<script>alert(1)</script>")
    assert page.status_code == 404
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;" in page.text


def test_the_machine_highlights_the_current_state(client: TestClient,
                                                  demos: dict[str, Any]) -> None:
    report = demos["rolled_back"]
    clone = next(c for c in report["commands"] if c["type"] == "CreateCloneOfTemplate")
    page = client.get(f"/machine/{clone['id']}")
    assert page.status_code == 200
    current = re.findall(r'<g id="node\d+" class="node visited current" '
                         r'data-state="([a-z_]+)"', page.text)
    assert current == [clone["status"]]
    assert 'data-state="rolling_back"' in page.text  # on the path it took
    task = report["tasks"][0]
    page = client.get(f"/machine/{task['id']}")
    assert re.findall(r'class="node visited current" data-state="([a-z_]+)"',
                      page.text) == [task["status"]]


def test_without_graphviz_the_machine_is_mermaid_text(client: TestClient,
                                                      demos: dict[str, Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(formats: Any) -> None:
        raise GraphvizMissing(["svg"])

    monkeypatch.setattr("statemachines.web.machine_page.require_graphviz", missing)
    page = client.get(f"/machine/{demos['succeeded']['root']['id']}")
    assert page.status_code == 200
    assert "need Graphviz" in page.text
    assert "stateDiagram-v2" in page.text
    assert "<svg" not in page.text


def test_the_history_timeline(client: TestClient, demos: dict[str, Any]) -> None:
    root = demos["rolled_back"]["root"]["id"]
    page = client.get(f"/roots/{root}/history")
    assert page.status_code == 200
    assert "rolled_back" in page.text and "compensate" in page.text
    assert client.get(f"/roots/{root}/history?page=0").status_code == 400
    assert client.get(f"/roots/{root}/history?page=99").status_code == 404


def test_the_leftovers_page(client: TestClient, demos: dict[str, Any]) -> None:
    page = client.get("/leftovers")
    assert page.status_code == 200
    [leftover] = demos["leftover"]["leftovers"]
    assert leftover in page.text
    assert demos["leftover"]["root"]["id"] in page.text
    assert "Clean up" not in page.text  # read-only
    assert client.get("/leftovers?before=%%%").status_code == 400
    assert client.get("/leftovers?before=WzEsMl0").status_code == 400  # [1,2]
    cursor = (1.5, "disk", "a/b", "owner")
    assert decode_cursor(encode_cursor(cursor)) == cursor


def test_leftovers_page_by_page(store: SqlStore) -> None:
    [first] = failed_reverts_page(store, limit=1)
    assert failed_reverts_page(store, before=first.cursor, limit=1) == []


def test_actions_are_refused_when_read_only_or_without_the_token(
        client: TestClient, store: SqlStore, demos: dict[str, Any]) -> None:
    root = demos["leftover"]["root"]["id"]
    for address in ("/cleanup", f"/roots/{root}/cancel"):
        refused = client.post(address, data={"token": TOKEN})
        assert refused.status_code == 403 and "read-only" in refused.text
    acting = _client(store, token=TOKEN)
    assert "Clean up" in acting.get("/leftovers").text
    assert acting.post("/cleanup").status_code == 403
    assert acting.post("/cleanup", data={"token": "wrong"}).status_code == 403
    assert acting.post("/cleanup", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert acting.post("/cleanup", content=b"token=" + b"x" * 9000,
                       headers={"content-type": "application/x-www-form-urlencoded"}
                       ).status_code == 400
    # Right token, but the root has ended (409) or does not exist (404).
    ended = acting.post(f"/roots/{root}/cancel", data={"token": TOKEN})
    assert ended.status_code == 409 and "already ended" in ended.text
    assert acting.post("/roots/0123/cancel", data={"token": TOKEN}).status_code == 404
    assert acting.get("/cleanup").status_code == 405


def test_a_page_reads_no_whole_table(client: TestClient, demos: dict[str, Any],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The pages must stay fast on 100,000 roots: none lists every root or revert state."""
    def whole_table(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a page read a whole table")

    for method in ("reverts", "root_ids", "load_active"):
        monkeypatch.setattr(SqlStore, method, whole_table)
    report = demos["leftover"]
    for address in ("/", f"/roots/{report['root']['id']}", f"/roots/{report['root']['id']}"
                    "/history", f"/machine/{report['commands'][1]['id']}", "/leftovers"):
        assert client.get(address).status_code == 200, address


def test_loopback_serves_loopback_names_only(store: SqlStore) -> None:
    guarded = _client(store, allowed_hosts=[*LOOPBACK_HOSTS, "testserver"])
    assert guarded.get("/").status_code == 200
    assert guarded.get("/", headers={"host": "attacker.example"}).status_code == 400


def test_pages_carry_a_strict_policy_and_static_files(client: TestClient) -> None:
    page = client.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    assert "live" in client.get("/static/live.js").text
    assert client.get("/static/secret.txt").status_code == 404


def test_cleanup_from_the_page_reverts_the_leftover(tmp_path: Path) -> None:
    report = _demo(tmp_path, "--images", "2", "--fail", "0", "--fail-rollback", "1")
    [leftover] = report["leftovers"]
    db = str(tmp_path / "web.db")
    opened = open_store(db, create=False)
    try:
        job = CleanupJob(cleanup_work(load_app(VM_APP), db,
                                      AgentChoice(storage=tmp_path / "storage")))
        acting = _client(opened, token=TOKEN, cleanup=job)
        started = acting.post("/cleanup", data={"token": TOKEN})
        assert started.status_code == 303
        assert started.headers["location"] == "/leftovers?done=cleanup"
        assert job.wait(60)
        page = acting.get("/leftovers?done=cleanup")
        assert "nothing is left revert_failed" in page.text
        assert f"{leftover}" in page.text and "reverted" in page.text  # the job's report
        assert failed_reverts_page(opened) == []
        assert not any((tmp_path / "storage" / "images").glob("*"))
    finally:
        opened.dispose()


def test_the_ui_command_refuses_what_it_cannot_serve(demos: dict[str, Any],
                                                     tmp_path: Path) -> None:
    short = tmp_path / "short-token"
    short.write_text("abc\n")
    for args, said in (
            (["--allow-actions"], "go together"),
            (["--token-file", str(short)], "go together"),
            (["--allow-actions", "--token-file", str(short)], "at least 16"),
            (["--allow-actions", "--token-file", str(tmp_path / "none")], "cannot read"),
    ):
        done = endaction("ui", "--db", demos["db"], *args)
        assert done.returncode == 2 and said in done.stderr, (args, done.stderr)
    missing = endaction("ui", "--db", str(tmp_path / "missing.db"))
    assert missing.returncode == 2 and "no database" in missing.stderr
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        busy = endaction("ui", "--db", demos["db"], "--port", port)
    assert busy.returncode == 1 and "cannot listen" in busy.stderr


def test_a_large_tree_and_history_are_shown_in_bounded_parts(
        client: TestClient, demos: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    report = demos["rolled_back"]
    root = report["root"]["id"]
    monkeypatch.setattr("statemachines.web.tree_page.NODES_SHOWN", 4)
    page = client.get(f"/roots/{root}")
    everything = len(report["commands"]) + len(report["tasks"])
    assert page.text.count('<li class="') == 4
    assert f"{everything - 4} more command(s) and task(s) not shown" in page.text
    assert page.text.count("<ul") == page.text.count("</ul>")  # every list is closed
    monkeypatch.setattr("statemachines.web.history_page.ROWS_PER_PAGE", 5)
    first = client.get(f"/roots/{root}/history")
    assert first.text.count("<tr class=") == 5
    assert f'href="/roots/{root}/history?page=2"' in first.text
    second = client.get(f"/roots/{root}/history?page=2")
    assert second.status_code == 200 and "rows 6 to 10" in second.text


def test_cancel_from_the_page_records_the_request(tmp_path: Path) -> None:
    db = str(tmp_path / "cancel.db")
    submitted = endaction("submit", "AddVmFromTemplate", "--db", db, "--params",
                          '{"vm": "vm1", "disks": [{"source": "template-disk0"}]}')
    assert submitted.returncode == 0, submitted.stderr
    root = submitted.stdout.strip()
    opened = open_store(db, create=False)
    try:
        acting = _client(opened, token=TOKEN)
        tree = acting.get(f"/roots/{root}")
        assert "Cancel this root" in tree.text and TOKEN not in tree.text
        done = acting.post(f"/roots/{root}/cancel", data={"token": TOKEN, "reason": "a test"})
        assert done.status_code == 303
        assert done.headers["location"] == f"/roots/{root}?done=cancel"
        assert opened.cancel_requests() == {root: "a test"}
        assert "Cancel requested" in acting.get(done.headers["location"]).text
        # Read-only, the same tree offers no button.
        assert "Cancel this root" not in _client(opened).get(f"/roots/{root}").text
    finally:
        opened.dispose()
