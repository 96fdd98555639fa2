"""A live web view of a database, read through the store a page at a time (`endaction ui`).

It shows the roots, their trees, each command's machine with the path it took, the history,
and what is left revert_failed.
"""

from ..core.errors import extra_missing

try:
    from .actions import CleanupJob, read_token_file
    from .app import web_app
    from .layout import Site
except ModuleNotFoundError as err:
    raise extra_missing(err, "http", "the web view (endaction ui)") from err

__all__ = ["CleanupJob", "Site", "read_token_file", "web_app"]
