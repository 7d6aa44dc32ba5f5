"""Decommission listener: durable `simulator-decommission` on
`gateway.decommissioned.>` (docs/contracts.md#alerts-and-decommission-events). Tenant and gateway come from the
subject (tokens 2 and 3); the gateway stops and is forgotten; events for gateways
this simulator does not have are acked and ignored.

It connects with the simulator's own service identity, never a gateway's: it runs
when NATS_TLS_CERT/NATS_TLS_KEY are set (whatever GATEWAY_IDENTITY says), and is off
(with a warning) otherwise.
"""

from __future__ import annotations

import logging
from functools import partial

import trio
from nats.aio.msg import Msg

from notip import bridge, contracts, natsio
from notip.backoff import Backoff
from notip.jetstream.pull import ACKED, BatchPuller, consume
from notip.simulator import natslink
from notip.simulator.registry import Registry
from notip.simulator.settings import Settings

log = logging.getLogger("notip.simulator.decommission")

FETCH_BATCH = 50
REBIND_RETRY_S = 2.0  # re-creating the durable when it is gone or leaderless


async def listen(
    registry: Registry,
    settings: Settings,
    *,
    task_status: trio.TaskStatus[bool] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Reports True once the durable consumer is bound (False: listener is off)."""
    if not settings.has_service_cert:
        log.warning("NATS_TLS_CERT/NATS_TLS_KEY not set: decommission listener is off")
        task_status.started(False)
        return
    tls = registry.tls.service()

    async def handle(msg: Msg) -> str:
        target = contracts.parse_decommissioned(msg.subject)
        if target is None:
            log.warning("unexpected decommission subject", extra={"subject": msg.subject})
            return ACKED
        tenant_id, gateway_id = target
        with trio.CancelScope(shield=True):
            forgotten = await registry.decommission(tenant_id, gateway_id)
        log.info(
            "gateway decommissioned" if forgotten else "decommission event ignored",
            extra={"tenant_id": tenant_id, "gateway_id": gateway_id},
        )
        return ACKED

    puller: BatchPuller | None = None

    def reconnected() -> None:
        if puller is not None:
            puller.on_reconnect()

    nc = await natsio.connect(
        settings.nats_url,
        tls,
        name="notip-simulator-decommission",
        events=natsio.ConnectionEvents(on_reconnect=reconnected),
    )
    try:
        async with trio.open_nursery() as nursery:
            puller = await nursery.start(
                partial(
                    consume,
                    nc,
                    contracts.DECOMMISSION.name,
                    natslink.decommission_consumer_config(settings.decommission_durable),
                    handle,
                    batch=FETCH_BATCH,
                    # Never fatal: on a cluster the durable is briefly leaderless
                    # (node lost, election): its re-creation times out until then.
                    ensure_backoff=Backoff(0.5, cap=10.0),
                    rebind_backoff=Backoff(REBIND_RETRY_S, REBIND_RETRY_S),
                )
            )
            task_status.started(True)
    finally:
        # The pull subscription is drained by `consume`; close, not drain, keeps
        # shutdown within the simulator's grace whatever the server does.
        await bridge.shielded(natslink.close, nc, timeout=settings.shutdown_grace_s + 3)
