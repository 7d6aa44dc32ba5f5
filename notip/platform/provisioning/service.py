"""`notip provisioning`: the Provisioning Service stand-in. Start here.

```
(trio-asyncio loop, opened by the caller)
└── serve(settings)
    ├── CA certificate + key (CA_CERTS_PATH/ca.crt, CA_KEY_PATH)
    ├── NATS connection (CN=provisioning,O=notip): request-reply to management,
    │   audit events on log.audit.{tenantId}
    └── nursery
        └── HTTP (hypercorn on Trio): POST /provision/onboard (+ /api/…), /health, /metrics
```
Readiness (`task_status.started`) once the HTTP port is bound. Shutdown is
cancellation; the connection is drained (shielded, time-limited).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio
from cryptography import x509
from nats.aio.client import Client as NATS
from prometheus_client import CollectorRegistry

from notip import natsio, pki
from notip.httpserve import serve_http
from notip.jetstream import publish as jetstream
from notip.platform.provisioning.app import AuditPublisher, build_app
from notip.platform.provisioning.onboarding import Onboarding, nats_requester
from notip.platform.provisioning.settings import Settings
from notip.platform.web import local_url

log = logging.getLogger("notip.provisioning")

AUDIT_PUBLISH_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ProvisioningInfo:
    http_port: int
    #: Base URL, e.g. `http://127.0.0.1:3000`; onboarding is at `{url}/provision/onboard`.
    http_url: str


def audit_publisher(nc: NATS) -> AuditPublisher:
    js = nc.jetstream()

    async def publish(subject: str, body: bytes, msg_id: str) -> None:
        await jetstream.publish(js, subject, body, timeout=AUDIT_PUBLISH_TIMEOUT_S, msg_id=msg_id)

    return publish


async def serve(
    settings: Settings,
    *,
    task_status: trio.TaskStatus[ProvisioningInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    ca_key = pki.load_key(settings.ca_key_path.read_bytes())
    ca_cert = x509.load_pem_x509_certificate(settings.ca_cert_path.read_bytes())
    tls = natsio.tls_context(settings.nats_tls)
    async with natsio.open_connection(settings.nats_url, tls, name="notip-provisioning") as nc:
        onboarding = Onboarding(
            nats_requester(
                nc,
                attempt_timeout_s=settings.mgmt_attempt_timeout_s,
                backoff_s=settings.mgmt_backoff_s,
            ),
            ca_key,
            ca_cert,
            cert_ttl_days=settings.cert_ttl_days,
            deadline_s=settings.onboard_deadline_s,
        )
        app = build_app(
            onboarding, CollectorRegistry(), audit_publisher(nc), lambda: nc.is_connected
        )
        async with trio.open_nursery() as nursery:
            port: int = await nursery.start(serve_http, app, settings.http_addr)
            info = ProvisioningInfo(port, local_url(settings.http_addr, port))
            log.info("provisioning stand-in ready", extra={"http_url": info.http_url})
            task_status.started(info)
