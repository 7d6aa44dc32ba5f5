"""HTTP face of the provisioning stand-in: `POST /provision/onboard` (also at
`/api/provision/onboard`), `GET /health`, `GET /metrics`.

Each attempt gives one structured audit log line (logger `notip.provisioning.audit`:
outcome, reason, factory id, gateway and tenant ids, duration; never keys, CSRs or
certificates' private parts) and, on success, one audit event on
`log.audit.{tenantId}`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from notip import contracts
from notip.envelope import iso
from notip.httpserve import standard_routes
from notip.platform.provisioning.onboarding import (
    Onboarded,
    OnboardError,
    Onboarding,
    OnboardRequest,
    parse_request,
)
from notip.platform.web import JSON_ERRORS, HttpError, read_json

log = logging.getLogger("notip.provisioning")
audit_log = logging.getLogger("notip.provisioning.audit")

#: Publishes one audit event (JetStream); raises on failure.
AuditPublisher = Callable[[str, bytes, str], Awaitable[None]]


@dataclass
class Metrics:
    attempts: Counter
    successes: Counter
    failures: Counter
    duration: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> Metrics:
        return cls(
            attempts=Counter(
                "notip_provisioning_attempts", "Onboarding attempts", registry=registry
            ),
            successes=Counter(
                "notip_provisioning_successes", "Onboardings that returned 201", registry=registry
            ),
            failures=Counter(
                "notip_provisioning_failures",
                "Failed onboardings by reason (validation, malformed_csr, invalid_credentials,"
                " already_provisioned, mgmt_unreachable, mgmt_error, deadline, internal)",
                ["reason"],
                registry=registry,
            ),
            duration=Histogram(
                "notip_provisioning_duration_seconds",
                "Time to answer an onboarding request",
                buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
                registry=registry,
            ),
        )


def audit_event(done: Onboarded, factory_id: str) -> bytes:
    cert = done.certificate
    return json.dumps(
        {
            "event": "gateway.provisioned",
            "actor": "provisioning",
            "tenantId": done.tenant_id,
            "gatewayId": done.gateway_id,
            "factoryId": factory_id,
            "certSerial": format(cert.serial_number, "x"),
            "certNotAfter": iso(cert.not_valid_after_utc),
            "keyVersion": 1,
            "timestamp": iso(dt.datetime.now(dt.UTC)),
        },
        separators=(",", ":"),
    ).encode()


def build_app(
    onboarding: Onboarding,
    registry: CollectorRegistry,
    publish_audit: AuditPublisher,
    healthy: Callable[[], bool],
) -> Starlette:
    metrics = Metrics.create(registry)

    async def onboard(request: Request) -> Response:
        started = trio.current_time()
        metrics.attempts.inc()
        req: OnboardRequest | None = None
        fields: dict[str, Any] = {"client": request.client.host if request.client else None}
        try:
            try:
                body = await read_json(request, error="VALIDATION_ERROR")
            except HttpError as exc:
                raise OnboardError(400, "VALIDATION_ERROR", "validation", exc.message) from None
            req = parse_request(body)
            fields["factory_id"] = req.factory_id
            done = await onboarding.onboard(req)
        except OnboardError as exc:
            metrics.failures.labels(exc.reason).inc()
            fields.update(outcome="failure", reason=exc.reason, status=exc.status)
            if exc.message:
                fields["detail"] = exc.message
            return JSONResponse(exc.body(), status_code=exc.status)
        except Exception:
            log.exception("onboarding failed unexpectedly")
            metrics.failures.labels("internal").inc()
            fields.update(outcome="failure", reason="internal", status=500)
            return JSONResponse({"error": "INTERNAL_ERROR"}, status_code=500)
        else:
            metrics.successes.inc()
            fields.update(
                outcome="success",
                status=201,
                gateway_id=done.gateway_id,
                tenant_id=done.tenant_id,
                cert_serial=format(done.certificate.serial_number, "x"),
            )
            try:
                await publish_audit(
                    contracts.audit_subject(done.tenant_id),
                    audit_event(done, req.factory_id),
                    f"provisioned-{done.gateway_id}",
                )
            except Exception as exc:  # noqa: BLE001 — the gateway is onboarded; the event is best effort
                log.warning(
                    "audit event not published: %s", exc, extra={"gateway_id": done.gateway_id}
                )
            return JSONResponse(done.response(), status_code=201)
        finally:
            elapsed = trio.current_time() - started
            metrics.duration.observe(elapsed)
            fields["duration_ms"] = round(elapsed * 1000, 1)
            audit_log.info("onboarding attempt", extra={"audit": "onboarding", **fields})

    return Starlette(
        exception_handlers=JSON_ERRORS,
        routes=[
            Route("/provision/onboard", onboard, methods=["POST"]),
            Route("/api/provision/onboard", onboard, methods=["POST"]),
            *standard_routes(registry, health_path="/health", nats_connected=healthy),
        ],
    )
