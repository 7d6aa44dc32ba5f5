from __future__ import annotations

import contextlib

import nats.errors
import trio

from notip import bridge, natsio
from notip.localservers import NatsServer
from notip.pki import PkiPaths

from ..conftest import service_tls


async def test_drain_after_idle_fetches_returns_at_once(
    aio_loop: None, nats_server: NatsServer, pki: PkiPaths
) -> None:
    """nats-py's fetch() leaves its queue un-joined; drain() must not wait on it."""
    nc = await natsio.connect(
        nats_server.url, natsio.tls_context(service_tls(pki, "simulator")), name="drain-test"
    )
    sub = await bridge.call(
        nc.jetstream().pull_subscribe,
        "command.gw.drain-test.>",
        durable=f"drain-{id(nc)}",
        stream="COMMANDS",
    )
    for _ in range(2):
        with contextlib.suppress(nats.errors.TimeoutError):
            await bridge.call(sub.fetch, 1, timeout=0.2)
    with trio.fail_after(5):  # the drain timeout inside is 10 s: this fails if it hangs
        await natsio.drain(nc)
    assert nc.is_closed
