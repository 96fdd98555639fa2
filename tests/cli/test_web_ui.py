"""`endaction ui` in a real browser: Debian's Chromium, driven by Playwright.

It runs on a database three real `endaction demo` runs left (a rollback, a success, a leftover),
against the command started as its own process with actions allowed.

Screenshots go to ENDACTION_ARTIFACTS (default: the test's tmp_path); with
ENDACTION_SCREENSHOT_DOCS=1 the tree page is also saved as docs/images/web-view.png, the picture
docs/how-to/operating.md shows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persistence import open_store
from persistence.revert_listing import failed_reverts_page

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "browser-test-token-0123456789abcdef"


def _endaction(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "statemachines.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ENDACTION_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def database(tmp_path: Path) -> dict[str, Any]:
    """The three roots, each from `endaction demo` with its documented exit status."""
    common = ["--json", "--db", str(tmp_path / "ui.db"), "--storage", str(tmp_path / "st")]
    runs = {}
    for name, args, status in (("rolled_back", ["--images", "3", "--fail", "1"], 5),
                               ("succeeded", ["--images", "2"], 0),
                               ("leftover", ["--images", "3", "--fail", "1",
                                             "--fail-rollback", "2"], 3)):
        done = _endaction("demo", *args, *common, cwd=tmp_path)
        assert done.returncode == status, done.stderr
        runs[name] = json.loads(done.stdout)
    return {"db": str(tmp_path / "ui.db"), "storage": tmp_path / "st", **runs}


@pytest.fixture
def server(tmp_path: Path, database: dict[str, Any]) -> Iterator[str]:
    """`endaction ui` as a process, on a free port; its address."""
    token_file = tmp_path / "ui-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    log = tmp_path / "ui.log"
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "statemachines.cli", "ui", "--db", database["db"],
             "--storage", str(database["storage"]), "--port", "0", "--refresh", "1",
             "--allow-actions", "--token-file", str(token_file)],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"on (http://\S+/) ", log.read_text())):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield found[1]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert status == 0, log.read_text()
    assert "endaction ui stopped" in log.read_text()


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as driver:
        # As root (CI), Chromium's sandbox cannot start; the pages are this test's own.
        launched = driver.chromium.launch(executable_path=CHROMIUM,
                                          args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield launched
        finally:
            launched.close()


def test_the_web_view_in_a_browser(server: str, browser: Any, database: dict[str, Any],
                                   artifacts: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    # Script errors, and a policy violation or a missing file: none is expected (but the
    # 403 the wrong token is answered with).
    page.on("console", lambda message: problems.append(message.text)
            if message.type == "error" and "status of 403" not in message.text else None)

    # 1. The roots, newest first, with status and outcome.
    page.goto(server)
    rows = page.locator("table.roots tbody tr")
    assert rows.count() == 3
    rolled = database["rolled_back"]["root"]
    row = page.locator(f'tr[data-root="{rolled["id"]}"]')
    assert row.locator(".state").inner_text() == "ended_failure"
    assert row.locator(".outcome").inner_text() == "rolled_back"
    page.screenshot(path=artifacts / "roots.png", full_page=True)
    page.select_option("form.filters select[name=status]", "ended_success")
    page.click("form.filters button")
    page.wait_for_url("**/?status=ended_success**")
    assert page.locator("table.roots tbody tr").count() == 1
    page.goto(server)

    # 2. The rolled-back root's tree: every command's status, and the causes.
    row.locator("a").first.click()
    page.wait_for_url(f"**/roots/{rolled['id']}")
    for command in database["rolled_back"]["commands"]:
        node = page.locator(f'li#c-{command["id"]}')
        assert node.get_attribute("data-status") == command["status"]
        assert node.locator(":scope > .node > .state").inner_text() == command["status"]
        if command["outcome"]:
            assert node.locator(":scope > .node > .outcome").inner_text() == command["outcome"]
        if command["error"]:
            assert "injected failure" in node.locator(":scope > .node > .cause").inner_text()
    page.screenshot(path=artifacts / "tree.png", full_page=True)
    if os.environ.get("ENDACTION_SCREENSHOT_DOCS") == "1":
        (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ROOT / "docs" / "images" / "web-view.png")

    # 3. A command's machine: its current state highlighted, its path drawn.
    failed = next(c for c in database["rolled_back"]["commands"] if c["outcome"] == "failed")
    page.locator(f'li#c-{failed["id"]} > .node a.type').click()
    page.wait_for_url(f"**/machine/{failed['id']}")
    current = page.locator("figure.diagram svg g.node.current")
    assert current.count() == 1
    assert current.get_attribute("data-state") == failed["status"]
    assert current.locator("path").first.get_attribute("fill") == "darksalmon"
    visited = page.locator("figure.diagram svg g.node.visited").evaluate_all(
        "nodes => nodes.map(n => n.dataset.state)")
    assert {"not_started", "executing", "rolling_back", failed["status"]} <= set(visited)
    page.screenshot(path=artifacts / "machine.png", full_page=True)

    # 4. The leftover, and a cleanup from the page: a wrong token is refused first.
    [leftover] = database["leftover"]["leftovers"]
    page.goto(server + "leftovers")
    assert leftover in page.locator("table.leftovers").inner_text()
    page.fill("form.action input[name=token]", "not-the-token")
    page.click("form.action button")
    assert "403" in page.locator("h1").inner_text()
    assert "wrong token" in page.locator(".problem").inner_text()
    # One tab watches the leftovers (with something typed in its form); another cleans up.
    page.goto(server + "leftovers")
    page.fill("form.action input[name=token]", "half-typed")
    other = browser.new_page(viewport={"width": 1280, "height": 860})
    other.goto(server + "leftovers")
    other.fill("form.action input[name=token]", TOKEN)
    other.click("form.action button")
    other.wait_for_url("**/leftovers?done=cleanup")
    other.wait_for_selector("[data-job=done]", timeout=60_000)
    assert "reverted" in other.locator("[data-job=done]").inner_text()
    other.screenshot(path=artifacts / "cleaned-up.png", full_page=True)
    # The watching tab follows without being reloaded: its live part is swapped in, and
    # what was typed in its form is still there.
    page.wait_for_selector("text=nothing is left revert_failed", timeout=15_000)
    assert page.url == server + "leftovers"
    assert page.input_value("form.action input[name=token]") == "half-typed"
    page.goto(server + f"roots/{database['leftover']['root']['id']}")
    assert page.locator("dl.summary .outcome").inner_text() == "cleaned_up"
    assert problems == []

    # 5. In the database: the resource is reverted, and its file is gone.
    store = open_store(database["db"], create=False)
    try:
        assert failed_reverts_page(store) == []
        states = {str(r.resource): str(r.state) for r in store.reverts()}
        assert states[f"image:{leftover}"] == "reverted"
    finally:
        store.dispose()
    assert not (database["storage"] / "images" / f"{leftover}.img").exists()
