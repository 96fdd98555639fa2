"""Task hosts over HTTP: the wire protocol, a server for any agent, and the engine's client.

The wire protocol is `protocol` and `openapi.json`; `host_app` is the server that puts any
`Agent` on the network, and `HttpAgent` the engine-side client.

The protocol is JSON over HTTP, versioned in its paths (`/v1/...`), and written down as an
OpenAPI document (served by every host at `/openapi.json`, copied in `docs/reference/`) so
that a host in any language can implement it. Over TLS (`ServerTls` for the host, `ClientTls`
for the engine), mutual if the host asks for its callers' certificates; the token is required
on top.
"""

from .bounded_server import ConnectionBook, HostLimits, uvicorn_options
from .client import HttpAgent
from .protocol import PROTOCOL_VERSION, openapi_document
from .server import host_app
from .tls import ClientTls, ServerTls

__all__ = ["PROTOCOL_VERSION", "ClientTls", "ConnectionBook", "HostLimits", "HttpAgent",
           "ServerTls", "host_app", "openapi_document", "uvicorn_options"]
