"""TLS for task hosts: the host's side and the engine's.

The host has its certificate and key (and, for mutual TLS, the CA its callers' certificates
must be signed by); the engine has the CA it trusts the host by, and its own certificate for a
host that asks for one.

The bearer token is still required on top: TLS says who the host is (and, mutually, who the
engine is); the token says the caller may run tasks. A certificate that is not trusted is
not a passing fault: the engine's call fails at once with the reason, never retried in a
loop that would only repeat the refusal.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InvalidConfiguration


def _readable(what: str, path: Path | None) -> None:
    if path is not None and not path.is_file():
        raise InvalidConfiguration(f"{what} {path}: no such file")


@dataclass(frozen=True)
class ClientTls:
    """The engine's side: the CA it trusts the host by, and its own certificate.

    `ca` signed the host's certificate (None: the system's CAs); `cert` and `key` are this
    engine's own, for a host that requires them.
    """

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def context(self) -> ssl.SSLContext:
        """The SSL context the engine checks the host with, presenting its own certificate.

        A certificate without its key (or a key without one), a missing file, or a file ssl
        cannot use is an InvalidConfiguration, raised before any call to the host.
        """
        if (self.cert is None) != (self.key is None):
            raise InvalidConfiguration("a client certificate needs its key, and a key its "
                                       "certificate (--agent-cert with --agent-key)")
        for what, path in (("the host's CA", self.ca), ("the client certificate", self.cert),
                           ("the client key", self.key)):
            _readable(what, path)
        try:
            context = ssl.create_default_context(cafile=None if self.ca is None else str(self.ca))
            if self.cert is not None and self.key is not None:
                context.load_cert_chain(str(self.cert), str(self.key))
        except (ssl.SSLError, OSError) as err:
            raise InvalidConfiguration(f"TLS files unusable: {err}") from err
        return context


@dataclass(frozen=True)
class ServerTls:
    """The host's side: its certificate and key, and, for mutual TLS, its callers' CA.

    With `client_ca`, callers must present a certificate signed by it (mutual TLS).
    """

    cert: Path
    key: Path
    client_ca: Path | None = None

    def check(self) -> None:
        """Fail before serving, not at the first handshake."""
        for what, path in (("the host certificate", self.cert), ("the host key", self.key),
                           ("the client CA", self.client_ca)):
            _readable(what, path)
        try:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.cert), str(self.key))
            if self.client_ca is not None:
                context.load_verify_locations(str(self.client_ca))
        except (ssl.SSLError, OSError) as err:
            raise InvalidConfiguration(f"TLS files unusable: {err}") from err


def refused_certificate(err: BaseException) -> bool:
    """Whether the transport failed because a certificate was refused.

    It may be the host's, refused by us, or ours, refused by the host: either way, the same
    call would fail the same way.
    """
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        if isinstance(seen, ssl.SSLError) and "CERTIFICATE" in str(seen).upper() \
                and "UNKNOWN_CA" in str(seen).upper():
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(err)
    return "CERTIFICATE_VERIFY_FAILED" in text or "TLSV1_ALERT_UNKNOWN_CA" in text


def tls_reason(err: BaseException) -> str:
    """Why the handshake was refused, for the engine's error: the verifier's words if any."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"its certificate was refused: {seen.verify_message}"
        seen = seen.__cause__ or seen.__context__
    return f"the TLS handshake was refused: {err}"
