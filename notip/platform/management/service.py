"""`notip mgmt`: the Management API stand-in, NATS side. Start here.

```
(trio-asyncio loop, opened by the caller)
└── serve(settings)
    ├── SQLite store (MGMT_DB_PATH), then the --seed file
    ├── NATS connection (CN=management-api,O=notip)
    └── nursery
        ├── responders         internal.mgmt.* request-reply, queue group
        ├── acks consumer      durable on COMMAND_ACKS  → commands' status
        ├── alerts consumer    durable on ALERTS        → recorded gw_offline alerts
        └── admin HTTP         docs/contracts.md#management-admin-http routes, /health, /metrics (hypercorn on Trio)
```
Readiness (`task_status.started`) comes once the responders are subscribed, the
durables bound and the HTTP port bound. Shutdown is cancellation: the responders
unsubscribe (the queue group's other members take over), the connection is drained
(shielded, time-limited), the store closed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio
from nats.aio.client import Client as NATS
from prometheus_client import CollectorRegistry

from notip import contracts, natsio
from notip.httpserve import serve_http
from notip.jetstream import publish as jetstream
from notip.platform.management import consumers
from notip.platform.management.admin import build_app
from notip.platform.management.clock import Clock, system_clock
from notip.platform.management.core import Management, Metrics, Publisher
from notip.platform.management.keys import KeySealer, load_master_key
from notip.platform.management.responders import serve_responders
from notip.platform.management.seed import apply_seed
from notip.platform.management.settings import Settings
from notip.platform.management.store import Store
from notip.platform.web import local_url

log = logging.getLogger("notip.mgmt")

PUBLISH_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ManagementInfo:
    http_port: int
    #: Base URL of the admin HTTP surface, e.g. `http://127.0.0.1:8080`.
    http_url: str
    db_path: Path


async def _not_connected(subject: str, body: bytes, *, msg_id: str) -> None:
    raise RuntimeError("NATS is not connected yet")


def jetstream_publisher(nc: NATS) -> Publisher:
    js = nc.jetstream()

    async def publish(subject: str, body: bytes, *, msg_id: str) -> None:
        await jetstream.publish(js, subject, body, timeout=PUBLISH_TIMEOUT_S, msg_id=msg_id)

    return publish


async def serve(
    settings: Settings,
    *,
    task_status: trio.TaskStatus[ManagementInfo] = trio.TASK_STATUS_IGNORED,
    clock: Clock = system_clock,
) -> None:
    master = load_master_key(settings.key_file) if settings.key_file else None
    store = Store(settings.db_path)
    try:
        registry = CollectorRegistry()
        mgmt = Management(
            store,
            KeySealer(master),
            _not_connected,
            clock=clock,
            command_timeout_s=settings.command_timeout_s,
            metrics=Metrics.create(registry),
        )
        if settings.seed_file is not None:
            counts = await apply_seed(mgmt, settings.seed_file)
            log.info("seed loaded", extra={"seed": str(settings.seed_file), **counts})

        tls = natsio.tls_context(settings.nats_tls)
        async with natsio.open_connection(settings.nats_url, tls, name="notip-mgmt") as nc:
            mgmt.publish = jetstream_publisher(nc)
            async with trio.open_nursery() as nursery:
                await nursery.start(partial(serve_responders, nc, mgmt, queue=settings.queue_group))
                durables = (
                    (
                        consumers.Durable(
                            contracts.COMMAND_ACKS.name,
                            settings.acks_durable,
                            contracts.COMMAND_ACKS_ALL,
                            settings.consumer_inactive_threshold_s,
                        ),
                        mgmt.record_ack,
                    ),
                    (
                        consumers.Durable(
                            contracts.ALERTS.name,
                            settings.alerts_durable,
                            contracts.ALERTS_ALL,
                            settings.consumer_inactive_threshold_s,
                        ),
                        mgmt.record_alert,
                    ),
                )
                for durable, handle in durables:
                    await nursery.start(
                        partial(
                            consumers.run_consumer,
                            nc,
                            durable,
                            handle,
                            fetch_timeout_s=settings.fetch_timeout_s,
                        )
                    )
                app = build_app(mgmt, registry, lambda: nc.is_connected)
                port: int = await nursery.start(serve_http, app, settings.http_addr)
                info = ManagementInfo(port, local_url(settings.http_addr, port), settings.db_path)
                log.info(
                    "management stand-in ready",
                    extra={"http_url": info.http_url, "db_path": str(settings.db_path)},
                )
                task_status.started(info)
    finally:
        store.close()
