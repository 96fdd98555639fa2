"""Engine processes sharing one storage directory race each other on one task id.

Each process below is a real OS process with its own `LocalDiskAgent`, as an engine worker
has; the outcome is read from the files the agents leave, not from inside them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from statemachines.example.vm import LocalDiskAgent

ROUNDS = 20
# How far ahead the parent sets the moment both processes act: enough for both to have read
# the order and be waiting, so that they leave the line together.
HEAD_START = 0.03

# An engine's agent in its own process: it acts on the orders read from stdin ("start" or
# "clear", a task id, the wall-clock moment to act at) and answers each with "ok" or the error.
WORKER = """
import sys, time
from statemachines.example.vm import LocalDiskAgent
storage, name = sys.argv[1], sys.argv[2]
agent = LocalDiskAgent(storage)
print(agent.owner, flush=True)
started = []
for line in sys.stdin:
    action, task_id, at = line.split()
    while time.time() < float(at):
        pass  # spin, not sleep: both processes must leave at the same moment
    try:
        if action == "start":
            # The image names the process that ran the copy: each run leaves its own file.
            agent.start(task_id, "copy_image", {"source": "tmpl", "image": f"{task_id}-{name}"})
            started.append(task_id)
        else:
            agent.clear(task_id)
        print("ok", flush=True)
    except Exception as err:
        print(f"error {type(err).__name__}: {err}".replace(chr(10), " "), flush=True)
# Wait for the copies this process may run: one closed half-way would be resumed elsewhere.
deadline = time.monotonic() + 30
while started and time.monotonic() < deadline:
    if all(r.ended for r in agent.poll(started).values()):
        break
    time.sleep(0.01)
agent.close()
"""


class Worker:
    def __init__(self, storage: Path, name: str) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(storage), name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.owner = self._line()

    def order(self, action: str, task_id: str, at: float) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{action} {task_id} {at!r}\n")
        self.process.stdin.flush()

    def answer(self) -> str:
        return self._line()

    def finish(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(timeout=60) == 0

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"worker {self.name} exited (code {self.process.wait()})"
        return line.strip()


@contextmanager
def workers(storage: Path, *names: str) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for name in names:
            started.append(Worker(storage, name))
        yield started
    finally:
        for worker in started:
            worker.kill()


def make_storage(tmp_path: Path) -> Path:
    storage = tmp_path / "storage"
    setup = LocalDiskAgent(storage)
    setup.ensure_template("tmpl", 64 << 10)
    setup.close()
    return storage


def at_once(orders: list[tuple[Worker, str, str]]) -> list[str]:
    """The orders, given to their processes to carry out at one moment; their answers."""
    at = time.time() + HEAD_START
    for worker, action, task_id in orders:
        worker.order(action, task_id, at)
    return [worker.answer() for worker, _, _ in orders]


def test_two_processes_starting_one_task_at_once_run_it_once(tmp_path: Path) -> None:
    """The check-and-start is atomic across processes: each id runs exactly once.

    It is counted by the images its copies left (each process copies to an image named after
    itself).
    """
    storage = make_storage(tmp_path)
    task_ids = [f"t{n}" for n in range(ROUNDS)]
    with workers(storage, "a", "b") as (a, b):
        for task_id in task_ids:
            assert at_once([(a, "start", task_id), (b, "start", task_id)]) == ["ok", "ok"]
        a.finish()
        b.finish()
    images = storage / "images"
    for task_id in task_ids:
        made = sorted(p.name for p in images.glob(f"{task_id}-*.img"))
        assert len(made) == 1, f"task {task_id} ran {len(made)} times: {made}"
        entry = json.loads((storage / "tasks" / f"{task_id}.json").read_text())
        winner = {a.owner: "a", b.owner: "b"}[entry["owner"]]
        assert made == [f"{task_id}-{winner}.img"], "the journal names the process that ran it"
        assert (entry["status"], entry["result"], entry["resumes"]) == ("finished", "success", 0)


def test_a_clear_and_a_stale_start_at_once_never_run_the_task_again(tmp_path: Path) -> None:
    """A clear and a stale start of one task at once never run it again.

    One engine clears a task it ran to its end and rolled back; another, with a stale view, starts
    it at the same moment. The journal lock puts one before the other: a start first finds the
    finished entry, a clear first leaves a tombstone; either way the start does nothing, and neither
    the entry nor the image comes back.
    """
    storage = make_storage(tmp_path)
    task_ids = [f"t{n}" for n in range(ROUNDS)]
    runner = LocalDiskAgent(storage)
    try:
        for task_id in task_ids:
            # The start child copies to "<id>-stale"; the first run wrote that image too.
            runner.start(task_id, "copy_image", {"source": "tmpl", "image": f"{task_id}-stale"})
        for task_id in task_ids:
            for _ in range(500):
                if runner.poll([task_id])[task_id].ended:
                    break
                time.sleep(0.01)
            assert runner.poll([task_id])[task_id].succeeded
            runner.image_path(f"{task_id}-stale").unlink()  # the rollback's delete
    finally:
        runner.close()
    journal = storage / "tasks"
    with workers(storage, "clearer", "stale") as (clearer, stale):
        for task_id in task_ids:
            orders = [(clearer, "clear", task_id), (stale, "start", task_id)]
            if int(task_id[1:]) % 2:
                orders.reverse()  # neither process is always the first to be told
            assert at_once(orders) == ["ok", "ok"]
            assert not (journal / f"{task_id}.json").exists(), f"{task_id}: the journal came back"
            assert (journal / "cleared" / task_id).exists()
        clearer.finish()
        stale.finish()
    assert list((storage / "images").iterdir()) == [], "a cleared copy ran again"
    assert sorted(p.name for p in journal.glob("*.json")) == []
