"""Chaos: SIGKILL `demo` and `resume` at random moments, several times in a row.

Then judge the end state from the database and the storage directory alone.

Each trial runs a demo VM of random size with random copy failures (and sometimes a revert that
fails for good), kills it after a random delay, kills one or more `resume`s the same way, lets a
last `resume` (and, where a revert was made to fail, `cleanup`) finish, and then checks what was
left: every command terminal, none ended twice, no task uncleared, no image file or inventory row
that belongs to no successfully created VM, no journal entry left over. The seed is printed;
ENDACTION_CHAOS_SEED replays a run and ENDACTION_CHAOS_TRIALS sets how many trials run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.judge import judge as _judge
from tests.worlds import vm_store

pytestmark = pytest.mark.slow

TRIALS = int(os.environ.get("ENDACTION_CHAOS_TRIALS", "8"))
SEED = int(os.environ.get("ENDACTION_CHAOS_SEED", str(random.SystemRandom().randrange(10**6))))


def _command(tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "statemachines.cli", *args,
            "--db", str(tmp_path / "chaos.db"), "--storage", str(tmp_path / "storage")]


def _run_and_maybe_kill(command: list[str], kill_after: float | None) -> int:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    try:
        if kill_after is not None:
            try:
                process.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
        _, errors = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"{command[3]} did not end within 180 s") from None
    nothing_yet = process.returncode == 2 and "nothing to" in errors  # killed before submitting
    if process.returncode not in (0, 3, 5, -9) and not nothing_yet:
        raise AssertionError(f"{command[3]} exited {process.returncode}: {errors[-2000:]}")
    return process.returncode


@pytest.mark.parametrize("trial", range(TRIALS))
def test_random_sigkills_of_demo_and_resume_end_clean(tmp_path: Path, trial: int) -> None:
    rng = random.Random(SEED * 1000 + trial)
    disks = rng.randint(2, 6)
    fail = rng.sample(range(disks), rng.randint(0, 2))
    fail_rollback = ([rng.choice([d for d in range(disks) if d not in fail])]
                     if fail and len(fail) < disks and rng.random() < 0.3 else [])
    kills = rng.randint(1, 3)
    print(f"seed {SEED} trial {trial}: {disks} disks, --fail {fail}, --fail-rollback "
          f"{fail_rollback}, {kills} resume kill(s)")
    demo = ["demo", "--images", str(disks)]
    for index in fail:
        demo += ["--fail", str(index)]
    for index in fail_rollback:
        demo += ["--fail-rollback", str(index)]
    started = time.monotonic()
    _run_and_maybe_kill(_command(tmp_path, *demo), kill_after=rng.uniform(0.3, 2.0))
    for _ in range(kills):
        _run_and_maybe_kill(_command(tmp_path, "resume"), kill_after=rng.uniform(0.3, 1.5))
    _run_and_maybe_kill(_command(tmp_path, "resume"), kill_after=None)
    if fail_rollback:
        _run_and_maybe_kill(_command(tmp_path, "cleanup"), kill_after=None)
    if not (tmp_path / "chaos.db").exists():
        return  # every process was killed before it made the database
    store = vm_store(str(tmp_path / "chaos.db"), create=True)
    try:
        problems = _judge(store, tmp_path / "storage")
    finally:
        store.dispose()
    assert problems == [], (f"seed {SEED} trial {trial} ({time.monotonic() - started:.1f} s): "
                            + "; ".join(problems))


def test_the_judge_sees_what_is_left_behind(tmp_path: Path) -> None:
    """The chaos check must be able to fail.

    A stray file, a stray journal entry and a command that never ended are each reported.
    """
    _run_and_maybe_kill(_command(tmp_path, "demo", "--images", "2"), kill_after=None)
    (tmp_path / "storage" / "images" / "stray.img").write_bytes(b"x")
    (tmp_path / "storage" / "tasks" / "t1.json").write_text("{}")
    store = vm_store(str(tmp_path / "chaos.db"), create=False)
    try:
        root = store.root_ids()[0]
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE commands SET status = 'waiting' WHERE id = ?", (root,))
        problems = _judge(store, tmp_path / "storage")
    finally:
        store.dispose()
    assert any("stray.img belongs to no created VM" in p for p in problems)
    assert any("journal entry t1.json left over" in p for p in problems)
    assert any(f"{root} is waiting" in p for p in problems)
