"""Your own bookkeeping of one type of resource, read and written inside the engine's tick.

The engine knows resources only as `ResourceRef(type, id)`. What exists, and what a command
made, is the user's business: an inventory of disks, an address pool, a table of DNS records.
A `Ledger` is that bookkeeping for one resource type, bound to one tick's transaction, so its
writes commit or roll back with the engine's own rows (a crash can never leave a resource in
the bookkeeping that no command made, or a command whose resource the bookkeeping forgot).

The store builds ledgers (it owns the transaction); you register their classes with it, and
hooks reach them through `ctx.ledger(YourLedger)`. A ledger is also the engine's first loop
guard: `exists` tells it whether an opposite command still has something to revert.

For example, with the SQL store (`persistence.TableLedger` does the caching for you)::

    class Addresses(TableLedger[AddressRow]):
        resource_type = "address"
        table = addresses            # your own table
        row_type = AddressRow

    store = open_store("app.db", ledgers=[Addresses])
    # in a hook:
    ctx.ledger(Addresses).put(AddressRow("10.0.0.7", owner=self.record.root_id))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar


class Ledger:
    """Bookkeeping of one resource type, for the length of one transaction.

    Attributes:
        resource_type: the `ResourceRef.type` this ledger keeps; the engine asks it whether
            a resource of that type exists (the existence guard).
    """

    resource_type: ClassVar[str] = ""

    def exists(self, resource_id: str) -> bool:
        """Whether the resource is still there, as far as your bookkeeping knows.

        While it is, a failed command's opposite command is started; once it is not, nothing is
        left to revert.
        """
        raise NotImplementedError(f"{type(self).__name__}.exists")

    def prefetch(self, resource_ids: Sequence[str]) -> None:
        """A hint: these resources are about to be asked about; load them in one go."""

    def flush(self) -> None:
        """Write what changed; called before every claim and before the tick commits."""
