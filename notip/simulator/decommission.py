"""Decommission listener: durable `simulator-decommission` on
`gateway.decommissioned.>` (CONTRACTS §1.5). Tenant and gateway come from the
subject (tokens 2 and 3); the gateway stops and is forgotten; events for gateways
this simulator does not have are acked and ignored.

It needs a service identity: it runs when NATS_TLS_CERT/NATS_TLS_KEY are set, and is
off (with a warning) otherwise.
"""

from __future__ import annotations

import logging

import nats.errors
import trio

from notip import bridge, natsio
from notip.simulator import natslink
from notip.simulator.registry import Registry
from notip.simulator.settings import Settings

log = logging.getLogger("notip.simulator.decommission")

FETCH_BATCH = 50
FETCH_TIMEOUT_S = 5.0


def parse_subject(subject: str) -> tuple[str, str] | None:
    tokens = subject.split(".")
    if len(tokens) != 4 or tokens[:2] != ["gateway", "decommissioned"] or not all(tokens[2:]):
        return None
    return tokens[2], tokens[3]


async def listen(
    registry: Registry,
    settings: Settings,
    *,
    task_status: trio.TaskStatus[bool] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Reports True once the durable consumer is bound (False: listener is off)."""
    if not settings.uses_service_cert:
        log.warning("NATS_TLS_CERT/NATS_TLS_KEY not set: decommission listener is off")
        task_status.started(False)
        return
    tls = natsio.tls_context(
        natsio.TlsFiles(settings.nats_ca_cert_path, settings.nats_tls_cert, settings.nats_tls_key)
    )
    nc = await natsio.connect(settings.nats_url, tls, name="notip-simulator-decommission")
    try:
        js = nc.jetstream()
        durable = settings.decommission_durable
        await bridge.call(
            natslink.ensure_consumer,
            js,
            natslink.DECOMMISSION_STREAM,
            natslink.decommission_consumer_config(durable),
        )
        sub = await bridge.call(natslink.bind_pull, js, natslink.DECOMMISSION_STREAM, durable)
        task_status.started(True)
        while True:
            try:
                msgs = await bridge.call(natslink.fetch, sub, FETCH_BATCH, FETCH_TIMEOUT_S)
            except (nats.errors.Error, OSError) as exc:
                log.info("decommission fetch failed: %s", exc)
                await trio.sleep(1.0)
                continue
            for msg in msgs:
                target = parse_subject(msg.subject)
                if target is None:
                    log.warning("unexpected decommission subject", extra={"subject": msg.subject})
                else:
                    tenant_id, gateway_id = target
                    with trio.CancelScope(shield=True):
                        forgotten = await registry.decommission(tenant_id, gateway_id)
                    log.info(
                        "gateway decommissioned" if forgotten else "decommission event ignored",
                        extra={"tenant_id": tenant_id, "gateway_id": gateway_id},
                    )
                await bridge.call(natslink.ack, msg)
    finally:
        # close, not drain (see gateway.py: drain hangs on pull subscriptions)
        await bridge.shielded(natslink.close, nc, timeout=settings.shutdown_grace_s + 3)
