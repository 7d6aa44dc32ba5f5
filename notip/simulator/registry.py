"""The simulator's application core: the gateways, their sensors, and the registry
nursery that holds one supervised nursery per running gateway (docs/design.md#nursery-trees).

Both control-plane faces (gRPC and REST) call these operations; errors are
`ApiError`s with gRPC codes. The faces check each request against the proto's
request rules first (validation.py: required fields, UUIDs, sensor types and
algorithms, ranges, durations, packet loss), so the operations here take valid values.

State kept apart:
- `desired_state` (running/stopped): what the operator asked for; RECOVERY_MODE
  restores it after a restart;
- `platform_status` (online/offline/paused): set by the platform's config_update
  commands; paused/offline gateways stay connected but silent, and stay so across
  stop/start and restarts.

Credentials from onboarding are persisted before anything else happens with the
gateway, in a shielded step: a failure (or a cancelled request) after onboarding never
loses the only copy of credentials that cannot be issued again.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
import trio
from cryptography import x509

from notip import pki
from notip.simulator import anomalies, sensors
from notip.simulator.errors import ApiError, check_uuid, conflict, not_found
from notip.simulator.events import EventHub
from notip.simulator.gateway import GatewayDeps, GatewayRuntime
from notip.simulator.metrics import Metrics
from notip.simulator.model import RUNNING, STOPPED, GatewayRecord, SensorRecord
from notip.simulator.provisioning import Credentials
from notip.simulator.settings import Settings
from notip.simulator.store import Store
from notip.simulator.telemetry import TelemetryFlusher
from notip.simulator.tls import TlsContexts

log = logging.getLogger("notip.simulator.registry")

HEALTHY_RUN_S = 60.0  # a gateway that ran this long restarts with the initial backoff


class Onboarder(Protocol):
    async def onboard(
        self, *, factory_id: str, factory_key: str, send_frequency_ms: int, firmware_version: str
    ) -> Credentials: ...


@dataclass(frozen=True)
class CreateSpec:
    factory_id: str
    factory_key: str = field(repr=False)
    model: str = ""
    firmware_version: str = ""
    send_frequency_ms: int = 0  # 0: provisioning's answer, else the default


@dataclass
class Runner:
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)
    runtime: GatewayRuntime | None = None


RuntimeFactory = Callable[[GatewayRecord, GatewayDeps], Any]


def credential_problem(rec: GatewayRecord, *, need_certificate: bool) -> str:
    """Why a stored gateway cannot run, or ""."""
    if len(rec.aes_key) != 32:
        return "stored AES key is not 32 bytes"
    if need_certificate:
        try:
            x509.load_pem_x509_certificate(rec.cert_pem.encode())
            pki.load_key(rec.key_pem.encode())
        except (ValueError, TypeError) as exc:
            return f"stored certificate or key unusable ({type(exc).__name__})"
    return ""


class Registry:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        metrics: Metrics,
        onboarder: Onboarder,
        hub: EventHub | None = None,
        *,
        deps: GatewayDeps | None = None,
        runtime_factory: RuntimeFactory = GatewayRuntime,
        telemetry: TelemetryFlusher | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.onboarder = onboarder
        self.hub = hub or EventHub()
        self.tls = TlsContexts(settings)
        self.deps = deps or GatewayDeps(
            settings=settings,
            metrics=metrics,
            store=store,
            hub=self.hub,
            tls_for=self.tls,
            telemetry=telemetry,
        )
        self.runtime_factory = runtime_factory
        self._gateways: dict[str, GatewayRecord] = {}
        self._sensor_owner: dict[str, str] = {}
        self._runners: dict[str, Runner] = {}
        self._creating: set[str] = set()
        self._nursery: trio.Nursery | None = None

    # -- the registry nursery ---------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Restore the stored gateways, then hold one nursery per running gateway
        until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._restore()
            task_status.started()
            await trio.sleep_forever()

    async def _restore(self) -> None:
        rows = await self.store.run(self.store.gateways)
        sensor_rows = await self.store.run(self.store.sensors)
        for row in rows:
            rec = GatewayRecord.from_row(row)
            problem = credential_problem(rec, need_certificate=not self.settings.shared_identity)
            if problem:
                rec.restore_error = rec.last_error = f"cannot restore: {problem}"
                log.error("gateway cannot be restored: %s", problem, extra={"gateway_id": rec.id})
            self._gateways[rec.id] = rec
            self.metrics.add_gateway(rec.id)
        for row in sensor_rows:
            rec_or_none = self._gateways.get(row["gateway_id"])
            if rec_or_none is None:
                continue
            spec = sensors.SensorSpec(
                row["type"], float(row["min_range"]), float(row["max_range"]), row["algorithm"]
            )
            s = SensorRecord(
                row["id"], row["gateway_id"], spec, dt.datetime.fromisoformat(row["created_at"])
            )
            rec_or_none.sensors[s.id] = s
            self._sensor_owner[s.id] = rec_or_none.id
        restored = 0
        for rec in self._gateways.values():
            if rec.desired_state != RUNNING:
                continue
            if not self.settings.recovery_mode:
                # Without RECOVERY_MODE stored gateways are listed but not started.
                rec.desired_state = STOPPED
                await self.store.run(self.store.update_gateway, rec.id, desired_state=STOPPED)
            elif not rec.restore_error:
                self._spawn(rec)
                restored += 1
        log.info(
            "gateways loaded",
            extra={
                "gateways": len(self._gateways),
                "restarted": restored,
                "recovery_mode": self.settings.recovery_mode,
            },
        )

    # -- supervision ------------------------------------------------------------------

    def _spawn(self, rec: GatewayRecord) -> None:
        if rec.id in self._runners:
            return
        assert self._nursery is not None, "registry is not running"
        runner = Runner()
        self._runners[rec.id] = runner
        self.metrics.gateways_running.set(len(self._runners))
        self._nursery.start_soon(self._supervise, rec, runner, name=f"gateway {rec.id}")

    async def _supervise(self, rec: GatewayRecord, runner: Runner) -> None:
        delay = self.settings.restart_backoff_s
        try:
            with runner.scope:
                while True:
                    runtime = self.runtime_factory(rec, self.deps)
                    runner.runtime = runtime
                    started = trio.current_time()
                    try:
                        await runtime.run()
                        raise RuntimeError("gateway nursery returned")
                    except Exception as exc:
                        rec.last_error = f"{type(exc).__name__}: {exc}"
                        log.exception("gateway failed; restarting", extra={"gateway_id": rec.id})
                        self.hub.connection(rec.id, "failed", rec.last_error)
                    runner.runtime = None
                    rec.connected = False
                    if trio.current_time() - started >= HEALTHY_RUN_S:
                        delay = self.settings.restart_backoff_s
                    await trio.sleep(delay)
                    delay = min(delay * 2, self.settings.restart_backoff_cap_s)
        finally:
            runner.runtime = None
            rec.connected = False
            if self._runners.get(rec.id) is runner:
                del self._runners[rec.id]
            self.metrics.gateways_running.set(len(self._runners))
            self.hub.connection(rec.id, "stopped")
            runner.done.set()

    def running(self, gateway_id: str) -> bool:
        return gateway_id in self._runners

    def status(self, rec: GatewayRecord) -> str:
        """The platform status as the API reports it: a stopped gateway is offline,
        unless the platform paused it."""
        if self.running(rec.id) or rec.platform_status == "paused":
            return rec.platform_status
        return "offline"

    def runtime(self, gateway_id: str) -> GatewayRuntime | None:
        runner = self._runners.get(gateway_id)
        return runner.runtime if runner else None

    # -- lookups ----------------------------------------------------------------------

    def _gateway(self, gateway_id: str, what: str = "gateway id") -> GatewayRecord:
        gid = check_uuid(gateway_id, what)
        rec = self._gateways.get(gid)
        if rec is None:
            raise not_found(f"gateway {gid} not found")
        return rec

    def _sensor(self, sensor_id: str) -> tuple[GatewayRecord, SensorRecord]:
        sid = check_uuid(sensor_id, "sensor id")
        owner = self._sensor_owner.get(sid)
        rec = self._gateways.get(owner) if owner else None
        if rec is None or sid not in rec.sensors:
            raise not_found(f"sensor {sid} not found")
        return rec, rec.sensors[sid]

    def gateways(self) -> list[GatewayRecord]:
        return sorted(self._gateways.values(), key=lambda r: (r.created_at, r.id))

    def get(self, gateway_id: str) -> GatewayRecord:
        return self._gateway(gateway_id)

    # -- creation ---------------------------------------------------------------------

    async def create(self, spec: CreateSpec) -> GatewayRecord:
        factory_id = spec.factory_id.strip()
        if factory_id in self._creating or any(
            r.factory_id == factory_id for r in self._gateways.values()
        ):
            raise ApiError(grpc.StatusCode.ALREADY_EXISTS, "ALREADY_PROVISIONED")
        self._creating.add(factory_id)
        try:
            requested = spec.send_frequency_ms or self.settings.default_send_frequency_ms
            try:
                creds = await self.onboarder.onboard(
                    factory_id=factory_id,
                    factory_key=spec.factory_key,
                    send_frequency_ms=requested,
                    firmware_version=spec.firmware_version,
                )
            except ApiError:
                self.metrics.provisioning_errors.inc()
                raise
            # No checkpoint between the answer and this shield: the credentials are
            # persisted (and the gateway registered) whatever happens to the caller.
            with trio.CancelScope(shield=True):
                self.metrics.provisioning_success.inc()
                freq = spec.send_frequency_ms or creds.send_frequency_ms or requested
                rec = GatewayRecord(
                    id=creds.gateway_id,
                    factory_id=factory_id,
                    tenant_id=creds.tenant_id,
                    model=spec.model,
                    firmware_version=spec.firmware_version,
                    send_frequency_ms=freq,
                    created_at=dt.datetime.now(dt.UTC),
                    cert_pem=creds.cert_pem,
                    key_pem=creds.key_pem,
                    aes_key=creds.aes_key,
                )
                try:
                    await self.store.run(self.store.insert_gateway, rec.row())
                except Exception as exc:  # noqa: BLE001 — whatever failed, the gateway is kept
                    # Keep it in memory (and running) rather than lose it; say so.
                    rec.last_error = f"credentials not persisted: {type(exc).__name__}: {exc}"
                    log.error(
                        "onboarded gateway not persisted",
                        extra={"gateway_id": rec.id, "error": str(exc)},
                    )
                self._gateways[rec.id] = rec
                self.metrics.add_gateway(rec.id)
                log.info(
                    "gateway onboarded",
                    extra={
                        "gateway_id": rec.id,
                        "tenant_id": rec.tenant_id,
                        "factory_id": factory_id,
                    },
                )
                self._spawn(rec)
            return rec
        finally:
            self._creating.discard(factory_id)

    async def bulk_create(
        self, factory_ids: list[str], spec: CreateSpec
    ) -> tuple[list[GatewayRecord], list[str]]:
        """Onboard each id with bounded concurrency. Returns the created gateways (in
        request order) and one error string per id ("" = success)."""
        created: list[GatewayRecord | None] = [None] * len(factory_ids)
        errors = [""] * len(factory_ids)
        seen: set[str] = set()
        limiter = trio.CapacityLimiter(self.settings.bulk_concurrency)

        async def one(i: int, factory_id: str) -> None:
            async with limiter:
                try:
                    created[i] = await self.create(
                        CreateSpec(
                            factory_id=factory_id,
                            factory_key=spec.factory_key,
                            model=spec.model,
                            firmware_version=spec.firmware_version,
                            send_frequency_ms=spec.send_frequency_ms,
                        )
                    )
                except ApiError as exc:
                    errors[i] = exc.message

        async with trio.open_nursery() as nursery:
            for i, factory_id in enumerate(factory_ids):
                fid = factory_id.strip()
                if not fid:
                    errors[i] = "factoryId is required"
                elif fid in seen:
                    errors[i] = "duplicate factoryId in this request"
                else:
                    seen.add(fid)
                    nursery.start_soon(one, i, fid)
        return [g for g in created if g is not None], errors

    # -- lifecycle --------------------------------------------------------------------

    async def start(self, gateway_id: str) -> None:
        rec = self._gateway(gateway_id)
        async with rec.lock:
            if rec.restore_error:
                raise conflict(rec.restore_error)
            if rec.desired_state != RUNNING:
                await self.store.run(self.store.update_gateway, rec.id, desired_state=RUNNING)
                rec.desired_state = RUNNING
            self._spawn(rec)

    async def _halt(self, rec: GatewayRecord) -> None:
        runner = self._runners.get(rec.id)
        if runner is not None:
            runner.scope.cancel()
            await runner.done.wait()

    async def stop(self, gateway_id: str) -> None:
        rec = self._gateway(gateway_id)
        async with rec.lock:
            if rec.desired_state != STOPPED:
                await self.store.run(self.store.update_gateway, rec.id, desired_state=STOPPED)
                rec.desired_state = STOPPED
            await self._halt(rec)

    async def delete(self, gateway_id: str) -> None:
        rec = self._gateway(gateway_id)
        await self._forget(rec)

    async def _forget(self, rec: GatewayRecord) -> None:
        async with rec.lock:
            await self._halt(rec)
            if self._gateways.pop(rec.id, None) is None:
                return  # deleted concurrently
            await self.store.run(self.store.delete_gateway, rec.id)
            for sid in rec.sensors:
                self._sensor_owner.pop(sid, None)
            self.tls.forget(rec.id)
            self.metrics.remove_gateway(rec.id)
            self.hub.close_gateway(rec.id)
            log.info("gateway forgotten", extra={"gateway_id": rec.id})

    async def decommission(self, tenant_id: str, gateway_id: str) -> bool:
        """A platform decommission event: stop and forget the gateway. False when it
        is not ours (unknown id or another tenant)."""
        rec = self._gateways.get(gateway_id)
        if rec is None or rec.tenant_id != tenant_id:
            return False
        await self._forget(rec)
        return True

    # -- sensors ----------------------------------------------------------------------

    async def add_sensor(
        self, gateway_id: str, type_: str, min_range: float, max_range: float, algorithm: str
    ) -> SensorRecord:
        rec = self._gateway(gateway_id)
        algorithm = algorithm or sensors.DEFAULT_ALGORITHM
        s = SensorRecord(
            id=str(uuid.uuid4()),
            gateway_id=rec.id,
            spec=sensors.SensorSpec(type_, float(min_range), float(max_range), algorithm),
            created_at=dt.datetime.now(dt.UTC),
        )
        await self.store.run(self.store.insert_sensor, s.row())
        rec.sensors[s.id] = s  # the publisher reads this at its next tick
        self._sensor_owner[s.id] = rec.id
        return s

    def list_sensors(self, gateway_id: str) -> list[SensorRecord]:
        return list(self._gateway(gateway_id).sensors.values())

    async def delete_sensor(self, sensor_id: str) -> None:
        rec, s = self._sensor(sensor_id)
        await self.store.run(self.store.delete_sensor, s.id)
        rec.sensors.pop(s.id, None)
        rec.pending_outliers.pop(s.id, None)
        self._sensor_owner.pop(s.id, None)

    # -- anomalies --------------------------------------------------------------------

    def _running_runtime(self, rec: GatewayRecord) -> GatewayRuntime:
        runtime = self.runtime(rec.id)
        if runtime is None:
            raise conflict(f"gateway {rec.id} is not running")
        return runtime

    def network_degradation(
        self, gateway_id: str, duration_s: float, packet_loss: float | None
    ) -> None:
        rec = self._gateway(gateway_id)
        loss = anomalies.normalise_packet_loss(packet_loss)
        self._running_runtime(rec).inject_degradation(duration_s, loss)
        self.metrics.anomalies.labels(type=anomalies.NETWORK_DEGRADATION).inc()

    def disconnect(self, gateway_id: str, duration_s: float, buffer_while_offline: bool) -> None:
        rec = self._gateway(gateway_id)
        self._running_runtime(rec).inject_disconnect(duration_s, buffer_while_offline)
        self.metrics.anomalies.labels(type=anomalies.DISCONNECT).inc()

    def outlier(self, sensor_id: str, value: float | None) -> None:
        rec, s = self._sensor(sensor_id)
        rec.pending_outliers[s.id] = value
        self.metrics.anomalies.labels(type=anomalies.OUTLIER).inc()
        self.hub.anomaly(
            rec.id,
            anomalies.OUTLIER,
            "started",
            f"sensor {s.id}" + (f" value={value:g}" if value is not None else ""),
        )

    # -- events -----------------------------------------------------------------------

    def watch(self, gateway_id: str) -> trio.MemoryReceiveChannel[Any]:
        rec = self._gateway(gateway_id)
        return self.hub.subscribe(rec.id)
