"""`notip nats-auth`: the NATS auth callout service (docs/nats-auth.md). Its nursery
tree (docs/design.md#nursery-trees):

```
serve(settings)                         (the trio-asyncio loop is already open)
└── root nursery
    ├── http: /metrics /healthz /readyz (httpserve.standard_routes)    METRICS_ADDR
    ├── [start-up] NATS as CN=nats-auth,O=notip (static user, in auth_users)
    │              NATS as the system-account nkey user (CONNZ, KICK)
    └── tasks nursery
        ├── responder (responder.py): $SYS.REQ.USER.AUTH, queue group notip-nats-auth
        │   └── `workers` × (open → verify → identify → decide [→ get-status] → sign → reply)
        ├── follower (enforcer.py): durable nats-auth-decommission on DECOMMISSION
        │   ├── kicker: CONNZ user gw:{tenantId}:{gatewayId} → KICK each
        │   └── follow-up: the same again once the positive cache TTL has passed
        └── sweep (enforcer.py): every SWEEP_INTERVAL_MS, open gw:* connections re-checked
```
Start-up: http → both connections → decommission durable bound → sweep → responder
subscribed → ready (`task_status.started(NatsAuthInfo)`): the last step makes this
instance take requests. Shutdown is the caller's cancellation: the responder
unsubscribes first (the queue group's other instances take the next requests), the
puller stops, both connections are drained (shielded, time-limited).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import trio
from starlette.applications import Starlette

from notip import natsio
from notip.httpserve import serve_http, standard_routes
from notip.jetstream.pull import BatchPuller
from notip.natsauth import jwt
from notip.natsauth.decide import Decider, Status
from notip.natsauth.enforcer import FOLLOW_UP_MARGIN_S, Enforcer
from notip.natsauth.identity import Gateway
from notip.natsauth.metrics import Metrics
from notip.natsauth.mgmt import ask_status
from notip.natsauth.responder import Answerer, serve_requests
from notip.natsauth.settings import Settings

log = logging.getLogger("notip.natsauth")


@dataclass
class Health:
    nc: natsio.NATS | None = None
    sys_nc: natsio.NATS | None = None
    puller: BatchPuller | None = None
    subscribed: bool = False

    def checks(self) -> dict[str, bool]:
        return {
            "nats": self.nc is not None and self.nc.is_connected,
            "system": self.sys_nc is not None and self.sys_nc.is_connected,
            "decommission": self.puller is not None and self.puller.bound,
            "responder": self.subscribed,
        }

    def connected(self) -> bool:
        checks = self.checks()
        return checks["nats"] and checks["system"]


@dataclass
class NatsAuthInfo:
    """What `nursery.start(serve, settings)` returns."""

    metrics_port: int
    metrics: Metrics
    decider: Decider
    enforcer: Enforcer
    health: Health


def build_app(metrics: Metrics, health: Health) -> Starlette:
    return Starlette(
        routes=standard_routes(
            metrics.registry, nats_connected=health.connected, readiness=health.checks
        )
    )


async def serve(
    settings: Settings,
    *,
    task_status: trio.TaskStatus[NatsAuthInfo] = trio.TASK_STATUS_IGNORED,
    clock: Callable[[], float] = time.time,
) -> None:
    s = settings
    metrics = Metrics()
    health = Health()
    decider = Decider(s.cache_policy)
    answerer = Answerer(jwt.Signer(s.issuer_seed), jwt.XKey(s.xkey_seed) if s.xkey_seed else None)
    budget_s = s.mgmt_request_timeout_ms / 1000.0
    async with trio.open_nursery() as root:
        port = await root.start(serve_http, build_app(metrics, health), s.metrics_addr)
        pullers: list[BatchPuller] = []

        def reconnected() -> None:
            metrics.nats_reconnects.inc()
            for p in pullers:
                p.on_reconnect()

        tls = natsio.tls_context(s.nats_tls)
        nc = await natsio.connect(
            s.nats_url,
            tls,
            name="notip-nats-auth",
            events=natsio.ConnectionEvents(on_reconnect=reconnected),
        )
        health.nc = nc
        sys_nc: natsio.NATS | None = None
        try:
            sys_nc = await natsio.connect(
                s.nats_url,
                tls,
                name="notip-nats-auth-system",
                events=natsio.ConnectionEvents(on_reconnect=metrics.nats_reconnects.inc),
                nkeys_seed=s.system_seed_file,
            )
            health.sys_nc = sys_nc

            async def ask_for_decision(gateway: Gateway, budget: float) -> Status | None:
                return await ask_status(nc, gateway.tenant_id, gateway.gateway_id, budget)

            async def ask_for_sweep(tenant_id: str, gateway_id: str) -> Status | None:
                return await ask_status(nc, tenant_id, gateway_id, budget_s)

            enforcer = Enforcer(sys_nc, decider, metrics, ask_for_sweep, clock)
            async with trio.open_nursery() as tasks:
                puller = await tasks.start(
                    partial(
                        enforcer.follow,
                        nc,
                        s.decommission_durable,
                        follow_up_s=decider.cache.policy.positive_ttl_s + FOLLOW_UP_MARGIN_S,
                    )
                )
                pullers.append(puller)
                health.puller = puller
                await tasks.start(enforcer.sweep_forever, s.sweep_interval_ms / 1000.0)
                await tasks.start(
                    partial(
                        serve_requests,
                        nc,
                        answerer,
                        decider,
                        ask_for_decision,
                        metrics,
                        queue=s.queue_group,
                        workers=s.workers,
                        backlog=s.backlog,
                        budget_s=budget_s,
                        clock=clock,
                    )
                )
                health.subscribed = True
                log.info(
                    "nats-auth ready",
                    extra={"metrics_port": port, "xkey": answerer.xkey is not None},
                )
                task_status.started(NatsAuthInfo(port, metrics, decider, enforcer, health))
        finally:
            health.subscribed = False
            with trio.CancelScope(shield=True):
                for p in pullers:
                    await p.stop()
                if sys_nc is not None:
                    await natsio.drain(sys_nc, timeout=2)
                await natsio.drain(nc, timeout=5)
                log.info("nats-auth stopped")
            root.cancel_scope.cancel()
