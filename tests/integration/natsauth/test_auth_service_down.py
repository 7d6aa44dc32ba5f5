"""`notip nats-auth` down: open connections keep working, new gateway connections are
refused clearly (at the server's authorization timeout, never admitted), and succeed
once it is back."""

from __future__ import annotations

import nats.errors
import trio

from notip import contracts, natsio
from notip.natsconf import AUTH_TIMEOUT_S
from tests.integration.natsauth.conftest import (
    Client,
    Stack,
    is_authorization_violation,
    js_publish,
    refusal,
)
from tests.waiting import eventually


async def test_existing_connections_survive_and_new_ones_wait_for_the_service(
    stack: Stack,
) -> None:
    first, second = await stack.onboard(), await stack.onboard()
    client = await stack.connect(first)
    try:
        for instance in list(stack.auth):
            await instance.stop()
        stack.auth.clear()
        subject = contracts.telemetry_subject(first.tenant_id, first.gateway_id)
        assert await js_publish(client, subject, b"{}") > 0

        started = trio.current_time()
        exc = await refusal(stack.server.url, second.tls(), inbox_prefix=second.inbox_prefix)
        # A clean refusal at the server's authorization timeout (under nats-py's 2 s
        # first-PING trap), not a connect() that "succeeds" on a dead connection.
        assert is_authorization_violation(exc), repr(exc)
        assert trio.current_time() - started < AUTH_TIMEOUT_S + 1.5

        await stack.start_auth()

        async def admitted() -> Client | None:
            try:
                return await stack.connect(second)
            except (nats.errors.Error, natsio.NotConfirmed):
                return None

        late = await eventually(admitted, timeout=15)
        assert late is not None
        try:
            assert (
                await js_publish(
                    late, contracts.telemetry_subject(second.tenant_id, second.gateway_id), b"{}"
                )
                > 0
            )
        finally:
            await late.close()
        assert await js_publish(client, subject, b"{}") > 0
    finally:
        await client.close()
