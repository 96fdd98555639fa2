"""The roots, newest first, as `endaction list` shows them, a page at a time.

Each page is one `SqlStore.list_roots` call (an index range, the hundredth page as cheap as
the first) asking for one root more than it shows, to know whether there is a next page;
nothing else reads roots. The cursor is the one `endaction list` prints, so a page of the
browser and a page of the terminal can be continued in either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import click

from persistence import SqlStore

from ..core.machines.command_machine import CommandStatus
from ..core.records.records import MAX_NAME_LENGTH, CommandRecord
from ..toolkit.listing import LIST_LIMIT, next_page_command, parse_cursor, parse_since
from .errors import BadInput
from .layout import Site, ago, frame, live, outcome, state, table
from .markup import Safe, clipped, fill, join, path, with_query

ROOTS_PER_PAGE = 50
MAX_ROOTS_PER_PAGE = 500
CAUSE_SHOWN = 160
STATUSES = tuple(str(s) for s in CommandStatus)


def root_cursor(record: CommandRecord) -> str:
    """The cursor after `record`, in `endaction list`'s own form (`--before` takes it)."""
    return f"{record.created_at!r}/{record.id}"


@dataclass(frozen=True)
class RootsQuery:
    """A page of roots as the address asks for it; empty fields are unset, as a form sends."""

    status: str | None = None
    type_name: str | None = None
    since: str | None = None
    before: str | None = None
    limit: int = ROOTS_PER_PAGE

    @classmethod
    def of(cls, params: Mapping[str, str]) -> RootsQuery:
        """Read and check the query string; BadInput names the parameter that is wrong."""
        unknown = sorted(set(params) - {"status", "type", "since", "before", "limit"})
        if unknown:
            raise BadInput(f"unknown parameter {unknown[0]!r}: the roots page takes status, "
                           "type, since, before and limit")
        status = params.get("status", "").strip() or None
        if status is not None and status not in STATUSES:
            raise BadInput(f"status={clipped(status, 60)!r} is not a command status: one of "
                           f"{', '.join(STATUSES)}")
        type_name = params.get("type", "").strip() or None
        if type_name is not None and len(type_name) > MAX_NAME_LENGTH:
            raise BadInput(f"type= is {len(type_name)} characters long; a command type has "
                           f"at most {MAX_NAME_LENGTH}")
        text = params.get("limit", "").strip()
        if not text:
            limit = ROOTS_PER_PAGE
        elif len(text) <= 6 and text.isascii() and text.isdigit() \
                and 1 <= int(text) <= MAX_ROOTS_PER_PAGE:
            limit = int(text)
        else:
            raise BadInput(f"limit={clipped(text, 40)!r} is not a number of roots from 1 to "
                           f"{MAX_ROOTS_PER_PAGE}")
        return cls(status, type_name, params.get("since", "").strip() or None,
                   params.get("before", "").strip() or None, limit)

    def cursor(self) -> tuple[float, str] | None:
        """The `before` cursor's (created_at, id), or None for the first page.

        A cursor that neither this page nor `endaction list` printed is bad input.
        """
        if self.before is None:
            return None
        try:
            return parse_cursor(self.before)
        except click.BadParameter:
            raise BadInput(f"before={clipped(self.before, 80)!r} is not a cursor printed by "
                           "this page or by `endaction list` (created_at/id)") from None

    def since_at(self, now: float) -> float | None:
        """The `since` filter as a time, ages counted back from `now`; None without one.

        It may be an age (30m, 2h, 7d), an ISO 8601 time or Unix seconds; anything else is bad
        input.
        """
        if self.since is None:
            return None
        try:
            return parse_since(self.since, now)
        except click.BadParameter:
            raise BadInput(f"since={clipped(self.since, 60)!r} is neither an age (30m, 2h, "
                           "7d), an ISO 8601 time nor Unix seconds") from None

    def address(self, before: str | None) -> str:
        """This page's address with the same filters, from the cursor `before` (None: first).

        The default limit is left out, so that the addresses stay as short as they can.
        """
        return with_query("/", status=self.status, type=self.type_name, since=self.since,
                          limit=None if self.limit == ROOTS_PER_PAGE else self.limit,
                          before=before)


def roots_page(site: Site, store: SqlStore, params: Mapping[str, str], now: float) -> Safe:
    """The roots, newest first, as the query parameters filter and page them.

    A page that has a next one links to it with the same filters, beside the `endaction list`
    command that prints the same page.
    """
    query = RootsQuery.of(params)
    records = store.list_roots(status=query.status, type_name=query.type_name,
                               since=query.since_at(now), before=query.cursor(),
                               limit=query.limit + 1)
    held = store.held_roots()  # a handful at most: roots the engine could not run
    more = len(records) > query.limit
    records = records[:query.limit]
    rows = [_row(record, held.get(record.id), now) for record in records]
    paging = []
    if query.before is not None:
        paging.append(fill('<a href="$first">first page</a>', first=query.address(None)))
    if more:
        cursor = root_cursor(records[-1])
        paging.append(fill('<a class="next" rel="next" href="$next">next page</a> '
                           '<code class="cli">$cli</code>', next=query.address(cursor),
                           cli=next_page_command(cursor, [
                               ("--status", query.status), ("--type", query.type_name),
                               ("--since", query.since),
                               ("--limit", query.limit if query.limit != LIST_LIMIT else None)])))
    what = " ".join(filter(None, [query.status, query.type_name]))
    body = join([
        _filters(query),
        live(join([
            table(["ID", "Type", "Status", "Outcome", "Age", "Cause"], rows,
                  empty=f"no roots{' ' + what if what else ''}"
                        f"{' before this cursor' if query.before else ''}", css="roots"),
            fill('<p class="paging">$links</p>', links=join(paging, " · ")),
        ])),
    ])
    return frame(site, "Roots", body)


def _row(record: CommandRecord, held: str | None, now: float) -> Safe:
    cause = record.error if held is None else f"held: {held}"
    return fill(
        '<tr data-root="$id"><td><a href="$href"><code>$id</code></a></td><td>$type</td>'
        "<td>$state$held</td><td>$outcome</td><td>$age</td>"
        '<td class="cause" title="$full">$cause</td></tr>',
        id=record.id, href=path("roots", record.id), type=record.type,
        state=state(record.status),
        held=Safe(' <span class="state bad">HELD</span>') if held is not None else Safe(""),
        outcome=outcome(record.outcome), age=ago(record.created_at, now),
        full=clipped(cause, 2000), cause=clipped(cause, CAUSE_SHOWN) or "-")


def _filters(query: RootsQuery) -> Safe:
    options = join([Safe('<option value="">any</option>')] + [
        fill('<option value="$s"$selected>$s</option>', s=s,
             selected=Safe(" selected") if s == query.status else Safe(""))
        for s in STATUSES])
    return fill(
        '<form class="filters" method="get" action="/">'
        '<label>status <select name="status">$options</select></label> '
        '<label>type <input name="type" value="$type" size="22"></label> '
        '<label>since <input name="since" value="$since" size="12" '
        'placeholder="2h, 7d, ISO"></label> '
        '<label>per page <input name="limit" value="$limit" size="4" inputmode="numeric">'
        "</label> <button>Show</button></form>",
        options=options, type=query.type_name or "", since=query.since or "",
        limit=query.limit)
