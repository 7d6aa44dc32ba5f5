"""Identities the callout refuses, and the one decision it cannot take (management
unreachable): nothing is admitted without a decision."""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path

import pytest

from notip import natsio
from notip import pki as pkimod
from notip.natsauth import decide, identity
from tests.integration.natsauth.conftest import (
    Stack,
    decisions,
    gateway_files,
    is_authorization_violation,
    js_publish,
    new_tenant,
    refusal,
)


async def test_a_certificate_of_another_ca_never_reaches_the_callout(
    stack: Stack, tmp_path: Path
) -> None:
    rogue = pkimod.PkiPaths(tmp_path / "rogue")
    pkimod.init_pki(rogue.root)
    files = gateway_files(rogue, tmp_path / "rogue-gw", str(uuid.uuid4()), new_tenant())
    # Trust the real server; present the rogue CA's gateway certificate.
    tls = natsio.tls_context(natsio.TlsFiles(stack.pki.ca_cert, files.cert, files.key))
    exc = await refusal(stack.server.url, tls)
    assert isinstance(exc, (ssl.SSLError, ConnectionResetError, BrokenPipeError)), repr(exc)


async def test_unknown_not_provisioned_and_foreign_tenant_gateways_are_refused(
    stack: Stack, tmp_path: Path
) -> None:
    assert stack.mgmt is not None
    auth = stack.auth[0]
    # A valid certificate of our CA for a gateway management never heard of.
    unknown = gateway_files(stack.pki, tmp_path / "gw", str(uuid.uuid4()), new_tenant())
    exc = await refusal(stack.server.url, natsio.tls_context(unknown))
    assert is_authorization_violation(exc), repr(exc)
    assert decisions(auth, decide.REFUSED, decide.UNKNOWN_GATEWAY) == 1
    # Created in management, never provisioned.
    created = await stack.mgmt.new_gateway()
    files = gateway_files(stack.pki, tmp_path / "gw", created.gateway_id, created.tenant_id)
    assert is_authorization_violation(await refusal(stack.server.url, natsio.tls_context(files)))
    assert decisions(auth, decide.REFUSED, decide.NOT_PROVISIONED) == 1
    # A provisioned gateway's id under another tenant.
    real = await stack.onboard()
    foreign = gateway_files(stack.pki, tmp_path / "gw2", real.gateway_id, new_tenant())
    assert is_authorization_violation(await refusal(stack.server.url, natsio.tls_context(foreign)))
    assert decisions(auth, decide.REFUSED, decide.UNKNOWN_GATEWAY) == 2
    # A certificate the callout cannot read as a gateway (CN not a gateway id).
    odd = gateway_files(stack.pki, tmp_path / "gw3", "gw-1", new_tenant())
    assert is_authorization_violation(await refusal(stack.server.url, natsio.tls_context(odd)))
    assert decisions(auth, decide.REFUSED, identity.NOT_A_GATEWAY) == 1
    assert decisions(auth, decide.ADMITTED, decide.PROVISIONED) == 0


async def test_a_decommissioned_gateway_is_refused(stack: Stack) -> None:
    assert stack.mgmt is not None
    gw = await stack.onboard()
    await stack.mgmt.decommission(gw.gateway_id)
    exc = await refusal(stack.server.url, gw.tls(), inbox_prefix=gw.inbox_prefix)
    assert is_authorization_violation(exc), repr(exc)
    assert decisions(stack.auth[0], decide.REFUSED, decide.DECOMMISSIONED) == 1


async def test_management_unavailable_admits_only_recently_known_gateways(
    stack: Stack, tmp_path: Path
) -> None:
    assert stack.mgmt is not None and stack.mgmt_running is not None
    auth = stack.auth[0]
    known = await stack.onboard()
    client = await stack.connect(known)  # decided with management: cached as provisioned
    await client.close()
    never_seen = await stack.onboard()
    await stack.mgmt_running.stop()

    again = await stack.connect(known)
    try:
        assert (
            await js_publish(again, f"telemetry.data.{known.tenant_id}.{known.gateway_id}", b"{}")
            > 0
        )
    finally:
        await again.close()
    assert decisions(auth, decide.ADMITTED, decide.CACHED) == 1  # within the positive TTL

    exc = await refusal(stack.server.url, never_seen.tls(), inbox_prefix=never_seen.inbox_prefix)
    assert is_authorization_violation(exc), repr(exc)
    assert decisions(auth, decide.REFUSED, decide.MANAGEMENT_UNAVAILABLE) == 1


async def test_management_unavailable_past_the_ttl_uses_the_stale_cache(stack: Stack) -> None:
    assert stack.mgmt is not None and stack.mgmt_running is not None
    # A second instance whose positive TTL is 0: every decision asks management.
    await stack.auth.pop().stop()
    auth = await stack.start_auth(cache_ttl_ms=0, negative_cache_ttl_ms=0)
    gw = await stack.onboard()
    await (await stack.connect(gw)).close()
    await stack.mgmt_running.stop()
    client = await stack.connect(gw)
    await client.close()
    assert decisions(auth, decide.ADMITTED, decide.STALE_CACHE) == 1
    assert decisions(auth, decide.ADMITTED, decide.PROVISIONED) == 1


@pytest.mark.parametrize("service", ["data-api", "provisioning"])
async def test_services_do_not_depend_on_the_callout(stack: Stack, service: str) -> None:
    """Static users (auth_users) never go through the callout: services connect even
    with no auth service running."""
    for instance in list(stack.auth):
        await instance.stop()
    client = await stack.connect_service(service)
    try:
        await client.flush()
        assert client.nc.is_connected
    finally:
        await client.close()
