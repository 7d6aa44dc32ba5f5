"""The NATS server accepts exactly the certificates docs/contracts.md#identities-and-permissions says it should."""

from __future__ import annotations

import ssl
from pathlib import Path

import nats.errors
import pytest
import trio

from notip import bridge, natsio
from notip import pki as pkimod
from notip.localservers import NatsServer
from notip.pki import PkiPaths

from ..conftest import service_tls


async def _try_connect(server: NatsServer, ctx: ssl.SSLContext) -> None:
    with trio.fail_after(15):
        nc = await natsio.connect_once(server.url, ctx, name="probe", timeout=3)
    try:
        # A connected client can round-trip: the server really accepted it.
        await bridge.call(nc.flush, timeout=3)
    finally:
        await natsio.drain(nc)


@pytest.mark.parametrize("service", pkimod.SERVICES)
async def test_service_certificate_connects(
    aio_loop: None, nats_server: NatsServer, pki: PkiPaths, service: str
) -> None:
    await _try_connect(nats_server, natsio.tls_context(service_tls(pki, service)))


async def test_client_without_certificate_is_rejected(
    aio_loop: None, nats_server: NatsServer, pki: PkiPaths
) -> None:
    ctx = natsio.tls_context(natsio.TlsFiles(pki.ca_cert))
    # TLS 1.3: the server's "certificate required" alert, or the reset after it.
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        await _try_connect(nats_server, ctx)


async def test_certificate_from_another_ca_is_rejected(
    aio_loop: None, nats_server: NatsServer, pki: PkiPaths, tmp_path: Path
) -> None:
    rogue = PkiPaths(tmp_path / "rogue")
    pkimod.init_pki(rogue.root)
    # Trust the real server, present a "simulator" certificate of the rogue CA.
    ctx = natsio.tls_context(
        natsio.TlsFiles(pki.ca_cert, rogue.cert("simulator"), rogue.key("simulator"))
    )
    # The server aborts the handshake: an alert, or a reset before it arrives.
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        await _try_connect(nats_server, ctx)


async def test_gateway_certificate_without_user_is_rejected(
    aio_loop: None, nats_server: NatsServer, pki: PkiPaths, tmp_path: Path
) -> None:
    ca_key, ca_cert = pkimod.load_ca(pki)
    key = pkimod.new_key()
    csr = pkimod.load_csr(pkimod.make_gateway_csr(key))
    cert = pkimod.sign_gateway_csr(
        ca_key, ca_cert, csr, gateway_id="7b0c6f5e-3f0e-4a36-9d7a-0d6b8c2e4f11", tenant_id="t1"
    )
    (tmp_path / "gw.crt").write_bytes(pkimod.cert_pem(cert))
    pkimod.write_private(tmp_path / "gw.key", pkimod.key_pem(key))
    ctx = natsio.tls_context(natsio.TlsFiles(pki.ca_cert, tmp_path / "gw.crt", tmp_path / "gw.key"))
    # TLS succeeds (same CA) but the subject maps to no user.
    with pytest.raises(nats.errors.Error, match=r"[Aa]uthorization"):
        await _try_connect(nats_server, ctx)
