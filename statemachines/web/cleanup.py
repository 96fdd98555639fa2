"""What the cleanup button does: what `endaction cleanup` does, reported in its words.

With workers holding leases a single engine may not work beside them, so the request is
recorded for them (one of them performs it; the page shows the leftovers going as it does)
instead of waiting here as the command does. Otherwise an engine of the application, with
its agents as the `ui` command's agent options say, recovers whatever is unfinished,
retries every resource left `revert_failed`, and runs until idle. Each cleanup opens its
own engine and closes it: the web view itself never holds one.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing

from ..core.engine.application import App
from ..core.errors import WorkersHoldRoots
from ..toolkit.agent_options import AgentChoice
from ..toolkit.app_world import open_app
from ..toolkit.run_report import cleanup_report, render_cleanup_text


def cleanup_work(app: App, db: str | None,
                 agents_at: AgentChoice) -> Callable[[Callable[[str], None]], str]:
    """The cleanup of `db` by `app` with its agents at `agents_at`, for a CleanupJob."""

    def work(note: Callable[[str], None]) -> str:
        with closing(open_app(app, db, agents_at, create=False,
                              missing="nothing to clean up")) as world:
            try:
                world.engine.recover()
            except WorkersHoldRoots:
                world.engine.request_cleanup()
                return ("workers hold leases on this database, so the cleanup was asked of "
                        "them: the first worker to look performs it")
            retried = world.engine.cleanup()
            note(f"retrying {len(retried)} resource(s) left revert_failed")
            world.engine.run_until_idle(on_wait=note)
            return render_cleanup_text(cleanup_report(app, world.store, world.agents,
                                                      retried))

    return work
