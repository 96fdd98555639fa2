"""A live web view of a database, read through the store a page at a time (`endaction ui`).

It shows the roots, their trees, each command's machine with the path it took, the history,
and what is left revert_failed.
"""

from .actions import CleanupJob, read_token_file
from .app import web_app
from .layout import Site

__all__ = ["CleanupJob", "Site", "read_token_file", "web_app"]
