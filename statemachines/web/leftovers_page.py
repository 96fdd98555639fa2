"""What is left `revert_failed`, a page at a time (`persistence.revert_listing`).

It lists the resources whose reverts gave up, newest first, with the cleanup button and how
the last cleanup went when actions are allowed.

The cursor is opaque (URL-safe base64 of the last row's key as JSON): resource names may
hold any character, a slash included, so no separator could be trusted to split them.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping

from persistence import SqlStore
from persistence.revert_listing import FailedRevert, RevertCursor, failed_reverts_page

from .actions import JobState
from .errors import BadInput
from .layout import Site, frame, live, moment, table
from .markup import Safe, clipped, fill, join, path, with_query

ROWS_PER_PAGE = 50
MAX_ROWS_PER_PAGE = 500


def encode_cursor(cursor: RevertCursor) -> str:
    """The `before=` text of a row's key: its JSON in URL-safe base64, without padding."""
    raw = json.dumps(list(cursor), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> RevertCursor:
    """The row key a `before=` text carries; one this page did not print is bad input.

    Nothing is guessed from a cursor that does not decode to a key of the right shape: the
    query would otherwise page from a row that does not exist.
    """
    wrong = BadInput(f"before={clipped(text, 80)!r} is not a cursor printed by this page")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise wrong from None
    if not (isinstance(value, list) and len(value) == 4
            and isinstance(value[0], int | float) and not isinstance(value[0], bool)
            and math.isfinite(value[0]) and all(isinstance(v, str) for v in value[1:])):
        raise wrong
    return float(value[0]), value[1], value[2], value[3]


def _limit(params: Mapping[str, str]) -> int:
    text = params.get("limit", "").strip()
    if not text:
        return ROWS_PER_PAGE
    if len(text) <= 6 and text.isascii() and text.isdigit() \
            and 1 <= int(text) <= MAX_ROWS_PER_PAGE:
        return int(text)
    raise BadInput(f"limit={clipped(text, 40)!r} is not a number of rows from 1 to "
                   f"{MAX_ROWS_PER_PAGE}")


def leftovers_page(site: Site, store: SqlStore, params: Mapping[str, str],
                   job: JobState | None, note: str | None = None) -> Safe:
    """The resources left revert_failed, `limit` rows at a time, from the `before` cursor on.

    Without a cursor the page starts at the newest. `job`, if any cleanup has started, says
    how the last one goes; `note` is the one-line answer to an action just taken.
    """
    unknown = sorted(set(params) - {"before", "limit"})
    if unknown:
        raise BadInput(f"unknown parameter {unknown[0]!r}: this page takes before and limit")
    limit = _limit(params)
    before_text = params.get("before", "").strip() or None
    before = None if before_text is None else decode_cursor(before_text)
    found = failed_reverts_page(store, before=before, limit=limit + 1)
    more = len(found) > limit
    found = found[:limit]
    paging = []
    if before is not None:
        paging.append(fill('<a href="$href">first page</a>',
                           href=with_query("/leftovers", limit=_shown_limit(limit))))
    if more:
        paging.append(fill('<a class="next" rel="next" href="$href">next page</a>',
                           href=with_query("/leftovers", limit=_shown_limit(limit),
                                           before=encode_cursor(found[-1].cursor))))
    rows = [_row(item) for item in found]
    body = join([
        Safe("<p>Resources whose opposite commands gave up after their bounded retries. "
             "A cleanup (<code>endaction cleanup</code>) retries each of them once more, now "
             "that the fault may be gone.</p>"),
        _cleanup_form(site),
        live(join([
            _job(job),
            table(["Resource", "Made by", "Root", "Attempts", "Lost", "Last error",
                   "Given up"], rows, empty="nothing is left revert_failed",
                  css="leftovers"),
            fill('<p class="paging">$links</p>', links=join(paging, " · ")),
        ])),
    ])
    return frame(site, "Left revert_failed", body, note=note)


def _shown_limit(limit: int) -> int | None:
    return None if limit == ROWS_PER_PAGE else limit


def _row(item: FailedRevert) -> Safe:
    revert = item.revert
    root = fill('<a href="$href"><code>$id</code></a>', href=path("roots", item.root_id),
                id=item.root_id) if item.root_id else Safe("(gone)")
    return fill(
        '<tr data-resource="$resource"><td><code>$resource</code></td>'
        '<td><a href="$owner_href">$owner_type</a> <code>$owner</code></td><td>$root</td>'
        '<td>$attempts</td><td>$lost</td><td class="cause" title="$full">$error</td>'
        "<td>$at</td></tr>",
        resource=str(revert.resource), owner_href=path("machine", revert.owner),
        owner_type=item.owner_type or "command", owner=revert.owner, root=root,
        attempts=revert.attempts, lost=revert.lost, full=clipped(revert.last_error, 4000),
        error=clipped(revert.last_error, 300) or "-", at=moment(item.updated_at))


def _cleanup_form(site: Site) -> Safe:
    if not site.actions:
        return Safe("")
    return Safe(
        '<form class="action" method="post" action="/cleanup">'
        '<label>token <input type="password" name="token" autocomplete="off" required>'
        '</label> <button class="danger">Clean up</button></form>')


def _job(job: JobState | None) -> Safe:
    if job is None or job.started_at is None:
        return Safe("")
    if job.running:
        return fill('<div class="job running" data-job="running"><p>A cleanup is running '
                    "(started $at)$progress</p></div>", at=moment(job.started_at),
                    progress=fill(": $p", p=job.progress) if job.progress else "")
    return fill('<div class="job $tone" data-job="$tone"><p>The last cleanup (started $at, '
                "ended $end):</p><pre>$summary</pre></div>", tone="failed" if job.failed
                else "done", at=moment(job.started_at), end=moment(job.finished_at or 0),
                summary=job.summary or "")
