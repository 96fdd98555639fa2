"""The engine's client for a local-disk storage host in another process.

It speaks the task protocol (`statemachines.http.HttpAgent`) and the two routes the host adds
for the demo: its image files, and making sure a template exists.
"""

from __future__ import annotations

from typing import Any

from statemachines import AgentError, TaskRejected
from statemachines.http import HttpAgent
from statemachines.http.protocol import PREFIX


class RemoteStorage(HttpAgent):
    """A local-disk host in another process, as the demo uses it.

    It speaks the task protocol, plus what the demo needs to see of the storage (templates,
    image files).
    """

    def __init__(self, url: str, token: str, **options: Any) -> None:
        super().__init__(url, token, **options)
        self.templates = f"{self.url} (its templates)"
        self.storage = self.url
        self.failing_deletes: frozenset[str] = frozenset()

    def image_names(self) -> list[str]:
        """The host's image names, sorted; a reply that is not a list of names is an error."""
        body = self._call("GET", f"{PREFIX}/storage/images", None, "list its images")
        names = body.get("images")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise AgentError(f"host {self.url} listed its images as garbage: {names!r:.200}")
        return sorted(names)

    def ensure_template(self, name: str, size: int) -> None:
        """Have the host make the template if it is missing or of another size.

        A refusal (a name or size the host rejects) is an `AgentError`, as a local disk's
        failure to write is an `OSError`: the caller reports either as unusable storage.
        """
        try:
            self._call("PUT", f"{PREFIX}/storage/templates/{name}", {"size": size},
                       f"make template {name}")
        except TaskRejected as err:
            raise AgentError(str(err)) from err
