"""Task hosts over HTTP: the wire protocol, a server for any agent, and the engine's client.

The wire protocol is `protocol` and `openapi.json`; `host_app` is the server that puts any
`Agent` on the network, and `HttpAgent` the engine-side client.

The protocol is JSON over HTTP, versioned in its paths (`/v1/...`), and written down as an
OpenAPI document (served by every host at `/openapi.json`, copied in `docs/reference/`) so
that a host in any language can implement it. Over TLS (`ServerTls` for the host, `ClientTls`
for the engine), mutual if the host asks for its callers' certificates; the token is required
on top. It needs the `http` extra (`pip install 'endaction[http]'`).
"""

from typing import TYPE_CHECKING, Any

from .host_limits import HostLimits
from .protocol import PROTOCOL_VERSION, openapi_document
from .tls import ClientTls, ServerTls

if TYPE_CHECKING:
    from .bounded_server import ConnectionBook, uvicorn_options
    from .client import HttpAgent
    from .server import host_app

#: What needs the HTTP stack (the `http` extra), by the module that holds it.
_SERVED = {"ConnectionBook": "bounded_server", "uvicorn_options": "bounded_server",
           "HttpAgent": "client", "host_app": "server"}


def __getattr__(name: str) -> Any:
    """The client and the server, imported on first use.

    The protocol, TLS settings and host limits need nothing beyond the standard library;
    the rest needs the `http` extra, and without it raises `MissingExtra` naming it.
    """
    if name in _SERVED:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_SERVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PROTOCOL_VERSION", "ClientTls", "ConnectionBook", "HostLimits", "HttpAgent",
           "ServerTls", "host_app", "openapi_document", "uvicorn_options"]
