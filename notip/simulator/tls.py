"""TLS for the simulator's NATS connections: which certificate each connection
presents, and the size of each connection's TLS read buffer.

Contexts are built by `notip.natsio.tls_context` (the one place every daemon builds
one); this module only chooses the files: each gateway's own provisioned certificate
(GATEWAY_IDENTITY=own, the default), or the service certificate (NATS_TLS_CERT/KEY)
for every gateway (GATEWAY_IDENTITY=shared). The simulator's own connection (the
decommission listener) always presents the service certificate.

Read buffer: asyncio's TLS protocol allocates a 256 KiB read buffer per connection
(`asyncio.sslproto.SSLProtocol.max_size`); at 1,000 gateway connections that is
~250 MB. Neither nats-py nor asyncio has a public way to choose it (verified with
nats-py 2.16.0 on CPython 3.11.7: `Client.connect` has no such option and the
transport is only reachable through `Client._transport._io_writer`), so
`shrink_read_buffer` replaces that buffer with a smaller one on the connection's own
protocol object right after connecting (and after every automatic reconnect). 16 KiB
is one TLS record; reads just take more, smaller chunks. When a later nats-py or
Python moves those private attributes the function changes nothing and reports the
guard `asyncio_tls_read_buffer` (notip/guards.py: one warning per process, and
`notip_library_guard_missing_total{guard="asyncio_tls_read_buffer"}` on /metrics).
"""

from __future__ import annotations

import ssl
import tempfile
from asyncio import sslproto
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS

from notip import guards, natsio, pki
from notip.simulator.model import GatewayRecord
from notip.simulator.settings import Settings


class TlsContexts:
    """TLS contexts: `service()` for the simulator's own connection; per gateway
    (`__call__`) its own provisioned certificate (loaded through a private temporary
    file: `ssl` reads files only), or the service one in shared-identity mode."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._service: ssl.SSLContext | None = None
        self._own: dict[str, ssl.SSLContext] = {}

    def service(self) -> ssl.SSLContext:
        """The service identity's context (NATS_TLS_CERT/KEY must be set)."""
        if not self.settings.has_service_cert:
            raise ValueError("NATS_TLS_CERT/NATS_TLS_KEY are not set")
        if self._service is None:
            self._service = natsio.tls_context(self.settings.nats_tls)
        return self._service

    def __call__(self, rec: GatewayRecord) -> ssl.SSLContext:
        if self.settings.shared_identity:
            return self.service()
        ctx = self._own.get(rec.id)
        if ctx is None:
            ctx = natsio.tls_context(natsio.TlsFiles(self.settings.nats_tls.ca))
            with tempfile.TemporaryDirectory(prefix="notip-gw-") as tmp:  # mode 0700
                cert, key = Path(tmp) / "gw.crt", Path(tmp) / "gw.key"
                pki.write_private(cert, rec.cert_pem.encode())
                pki.write_private(key, rec.key_pem.encode())
                ctx.load_cert_chain(str(cert), str(key))
            self._own[rec.id] = ctx
        return ctx

    def forget(self, gateway_id: str) -> None:
        self._own.pop(gateway_id, None)


# -- read buffer --------------------------------------------------------------------


def _ssl_protocol(nc: NATS) -> Any:
    transport = getattr(getattr(nc, "_transport", None), "_io_writer", None)
    transport = getattr(transport, "transport", None)
    return getattr(transport, "_ssl_protocol", None)


def read_buffer_size(nc: NATS) -> int | None:
    """The connection's TLS read buffer size (None: not reachable)."""
    buf = getattr(_ssl_protocol(nc), "_ssl_buffer", None)
    return len(buf) if buf is not None else None


def shrink_read_buffer(nc: NATS, size: int) -> bool:
    """Give this connection's TLS protocol a `size`-byte read buffer (see module
    docstring). Called on the asyncio side between callbacks, so no read is in
    flight. Returns False when it could not (and changes nothing)."""
    proto = _ssl_protocol(nc)
    if not isinstance(proto, sslproto.SSLProtocol) or not hasattr(proto, "_ssl_buffer"):
        guards.missing(
            guards.ASYNCIO_TLS_READ_BUFFER,
            "nats-py's transport or asyncio's SSLProtocol._ssl_buffer not found; each "
            "gateway connection keeps asyncio's default TLS read buffer",
        )
        return False
    # Private attributes, checked above (guards.ASYNCIO_TLS_READ_BUFFER).
    if len(proto._ssl_buffer) > size:  # noqa: SLF001
        proto.max_size = size  # type: ignore[misc]  # instance attribute shadows the class one
        proto._ssl_buffer = bytearray(size)  # noqa: SLF001
        # typeshed does not declare the view asyncio reads into.
        proto._ssl_buffer_view = memoryview(proto._ssl_buffer)  # type: ignore[attr-defined]  # noqa: SLF001
    return True
