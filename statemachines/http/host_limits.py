"""The bounds a task host keeps against its clients, as settings that need no HTTP stack.

They are apart from the server (bounded_server.py) so that a command's options can show
their defaults without the `http` extra installed.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass, replace

log = logging.getLogger("endaction.host")


@dataclass(frozen=True)
class HostLimits:
    """What a client may hold of a host; every field is a bound, documented in the README.

    Attributes:
        request_timeout: seconds a connection has to send a whole request.
        keep_alive: seconds an idle keep-alive connection stays open.
        max_connections: connections open at once; beyond, the oldest unanswered is closed.
        fd_reserve: open files kept free beyond the connections, for the host's own work.
        log_every: seconds between the lines that count refusals.
    """

    request_timeout: float = 10.0
    keep_alive: float = 5.0
    max_connections: int = 200
    fd_reserve: int = 64
    log_every: float = 10.0

    def fitted(self) -> HostLimits:
        """These limits within the process's open-file limit.

        The soft limit is raised as far as the hard one allows, and the connection bound
        lowered if it must be.
        """
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = self.max_connections + self.fd_reserve
        if soft != resource.RLIM_INFINITY and soft < wanted:
            raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
                soft = raised
            except (ValueError, OSError):
                pass
        if soft != resource.RLIM_INFINITY and soft < wanted:
            fitted = max(8, soft - self.fd_reserve)
            log.warning("only %d open files allowed: serving at most %d connections (of %d "
                        "asked), %d files kept for the host's own work", soft, fitted,
                        self.max_connections, self.fd_reserve)
            return replace(self, max_connections=fitted)
        return self
